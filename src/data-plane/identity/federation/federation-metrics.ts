import { Counter, Gauge, type Registry } from 'prom-client';
import { FEDERATION_REJECT_REASONS, type FederationRejectReason } from './bundle-directory.ts';

/**
 * meshlet_federation_*: registered only on sidecars with MESHLET_FEDERATION_BUNDLES set (a
 * sidecar without federation has neither the series nor their cost). Every reason's series
 * exists at 0 from the start, so `increase()` of a refusal that never happened is 0.
 */
export class FederationMetrics {
  readonly bundleErrors: Counter<'reason'>;
  readonly trustDomains: Gauge;

  constructor(registry: Registry) {
    this.bundleErrors = new Counter({
      name: 'meshlet_federation_bundle_errors_total',
      help: 'Federated bundle files refused (the trust domain keeps its last good bundle), by reason.',
      labelNames: ['reason'],
      registers: [registry],
    });
    for (const reason of FEDERATION_REJECT_REASONS) this.bundleErrors.inc({ reason }, 0);
    this.trustDomains = new Gauge({
      name: 'meshlet_federation_trust_domains',
      help: 'Foreign trust domains whose bundle is loaded from the federation directory.',
      registers: [registry],
    });
  }

  rejected(reason: FederationRejectReason): void {
    this.bundleErrors.inc({ reason });
  }

  loaded(count: number): void {
    this.trustDomains.set(count);
  }
}
