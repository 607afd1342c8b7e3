import type { AdmissionHandler, AdmissionRequest, AdmissionResponseBody } from './webhook-server.ts';
import { noInjectorMetrics, type AdmissionResult, type InjectorMetrics } from './metrics.ts';
import { injectPod, PodRefusedError, type InjectionResult, type InjectionSettings, type Pod } from './patch/index.ts';
import { MeshletError } from '../../common/errors/meshlet-error.ts';

/** AdmissionResponse plus `auditAnnotations` (admission/v1): the reason lands in the API server's audit log. */
export interface MutateResponse extends AdmissionResponseBody {
  auditAnnotations?: Record<string, string>;
}

export interface MutateOptions {
  settings: InjectionSettings;
  metrics?: InjectorMetrics;
  /** Called with every internal error (the process logs it). */
  onError?: (err: unknown, request: AdmissionRequest) => void;
  /** The patch builder; replaceable only so tests can exercise the internal-error path. */
  inject?: typeof injectPod;
}

/**
 * `POST /mutate`: the handler behind the webhook server's route (webhook-server.ts parses the
 * AdmissionReview, caps the body, answers 400 on malformed input and copies the uid). Only a
 * Pod CREATE is considered; anything else is allowed untouched. It is synchronous CPU work
 * with no I/O, so it answers in microseconds and cannot hang on anything.
 */
export function createMutateHandler(options: MutateOptions): AdmissionHandler {
  const metrics = options.metrics ?? noInjectorMetrics;
  const inject = options.inject ?? injectPod;
  const { settings } = options;

  return (request) => {
    const started = performance.now();
    const [result, response] = answer(request);
    metrics.onAdmission(result, (performance.now() - started) / 1000);
    return response;
  };

  function answer(request: AdmissionRequest): [AdmissionResult, MutateResponse] {
    const isPod = request.kind?.kind === 'Pod' && (request.kind.group ?? '') === '' && (request.resource?.resource ?? 'pods') === 'pods';
    const subResource = (request as { subResource?: unknown }).subResource;
    if (!isPod || request.operation !== 'CREATE' || (subResource !== undefined && subResource !== '')) return ['ignored', { allowed: true }];
    const pod = request.object as Pod;
    const namespace = request.namespace || (pod as { metadata?: { namespace?: string } } | undefined)?.metadata?.namespace || 'default';
    let injection: InjectionResult;
    try {
      injection = inject(pod, namespace, settings);
    } catch (err) {
      if (err instanceof PodRefusedError) {
        return ['refused', { allowed: false, status: { code: 400, reason: 'BadRequest', message: `meshlet: ${err.code}: ${err.message}` }, auditAnnotations: { injection: `refused: ${err.code}` } }];
      }
      options.onError?.(err, request);
      const code = err instanceof MeshletError ? err.code : 'INJECTOR_INTERNAL';
      const message = `meshlet injector internal error (${code}): ${(err as Error)?.message ?? String(err)}`;
      if (settings.failureMode === 'allow') {
        return ['error_allowed', { allowed: true, warnings: [`${message}; the pod runs WITHOUT the mesh`], auditAnnotations: { injection: `failed: ${code}` } }];
      }
      return ['error_denied', { allowed: false, status: { code: 500, reason: 'InternalError', message }, auditAnnotations: { injection: `failed: ${code}` } }];
    }
    const warnings = injection.warnings.length > 0 ? { warnings: injection.warnings } : {};
    if (injection.outcome === 'skipped') {
      return ['skipped', { allowed: true, ...warnings, auditAnnotations: { injection: `skipped: ${injection.reason}` } }];
    }
    return [
      'injected',
      {
        allowed: true,
        patchType: 'JSONPatch',
        patch: Buffer.from(JSON.stringify(injection.patch)).toString('base64'),
        ...warnings,
        auditAnnotations: { injection: 'injected' },
      },
    ];
  }
}
