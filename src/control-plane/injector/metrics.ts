import { Counter, Histogram, type Registry } from 'prom-client';

/**
 * What the mutating webhook counts. `result` is a small fixed set (below), so the counter
 * has a bounded number of series; every result starts at 0 so rate() is 0, not absent.
 */
export const ADMISSION_RESULTS = [
  /** The pod got the mesh. */
  'injected',
  /** A pod left alone on purpose (opted out, hostNetwork, excluded namespace, already injected). */
  'skipped',
  /** Not a Pod CREATE: allowed untouched. */
  'ignored',
  /** The pod asked for the mesh in a way that cannot work (bad annotation, port clash): denied with the reason. */
  'refused',
  /** An injector bug: allowed without mesh (failure mode allow). */
  'error_allowed',
  /** An injector bug: denied (failure mode deny). */
  'error_denied',
] as const;

export type AdmissionResult = (typeof ADMISSION_RESULTS)[number];

/** What `/validate` answered for a policy ConfigMap: admitted, or refused with its errors. */
export const VALIDATION_RESULTS = ['allowed', 'denied'] as const;
export type ValidationResult = (typeof VALIDATION_RESULTS)[number];

export interface InjectorMetrics {
  onAdmission(result: AdmissionResult, seconds: number): void;
  onValidation(result: ValidationResult): void;
}

export const noInjectorMetrics: InjectorMetrics = Object.freeze({ onAdmission() {}, onValidation() {} });

export function promInjectorMetrics(registry: Registry): InjectorMetrics {
  const requests = new Counter({
    name: 'meshlet_injector_admission_requests_total',
    help: 'Pod admission reviews the mutating webhook answered, by result.',
    labelNames: ['result'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'meshlet_injector_admission_duration_seconds',
    help: 'Time the mutating webhook spent building one admission response (request parsing excluded).',
    // Building a patch takes well under a millisecond; the tail buckets catch GC pauses and a loaded node.
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [registry],
  });
  const validations = new Counter({
    name: 'meshlet_injector_policy_validations_total',
    help: 'Policy ConfigMaps the validating webhook (/validate) answered: allowed, or denied with their errors.',
    labelNames: ['result'],
    registers: [registry],
  });
  for (const r of ADMISSION_RESULTS) requests.labels(r).inc(0);
  for (const r of VALIDATION_RESULTS) validations.labels(r).inc(0);
  return {
    onAdmission(result, seconds) {
      requests.labels(result).inc();
      duration.observe(seconds);
    },
    onValidation(result) {
      validations.labels(result).inc();
    },
  };
}
