import { Counter, type Registry } from 'prom-client';
import { REFUSAL_REASONS, type RefusalReason } from './errors.ts';

/**
 * What the identity service counts. A two-method interface so the service does not depend
 * on prom-client (tests pass a recorder; the process passes the prom-client one below).
 */
export interface CertifyMetrics {
  onIssued(): void;
  onRefused(reason: RefusalReason): void;
}

export const noCertifyMetrics: CertifyMetrics = Object.freeze({ onIssued() {}, onRefused() {} });

/** The prom-client implementation, registered on `registry`. */
export function promCertifyMetrics(registry: Registry): CertifyMetrics {
  const issued = new Counter({
    name: 'meshlet_identity_certificates_issued_total',
    help: 'X.509-SVIDs the identity service issued.',
    registers: [registry],
  });
  const refused = new Counter({
    name: 'meshlet_identity_certificates_refused_total',
    help: 'Certify requests the identity service refused, by reason.',
    labelNames: ['reason'],
    registers: [registry],
  });
  // Every reason starts at 0, so a rate() over a reason that has never happened is 0, not absent.
  for (const reason of REFUSAL_REASONS) refused.labels(reason).inc(0);
  return {
    onIssued: () => issued.inc(),
    onRefused: (reason) => refused.labels(reason).inc(),
  };
}
