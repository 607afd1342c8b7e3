import { Counter, type Registry } from 'prom-client';
import type { AdminEndpoint, AdminRefusalReason } from '../sidecar/request-log.ts';

/** The refusals the admin port can make, as (endpoint, reason) label pairs; each series starts at 0. */
export const ADMIN_REFUSALS: readonly (readonly [AdminEndpoint, AdminRefusalReason])[] = [
  ['connections', 'not_loopback'],
  ['shutdown', 'disabled'],
  ['shutdown', 'not_loopback'],
  ['shutdown', 'method_not_allowed'],
  ['app-health', 'unknown_probe'],
  ['other', 'method_not_allowed'],
  ['other', 'not_found'],
];

const NAME = 'meshlet_admin_refusals_total';

/**
 * meshlet_admin_refusals_total{endpoint, reason}: admin requests refused — /connections or
 * /shutdown from the network, /shutdown while disabled, probe names the pod does not have
 * (e.g. /app-health/__proto__), unknown paths. A rising `not_loopback` series is someone
 * on the network probing the admin port.
 */
export class AdminMetrics {
  readonly refusals: Counter<'endpoint' | 'reason'>;

  constructor(registry: Registry) {
    // One admin server per registry in the sidecar; tests may build several on one registry.
    const existing = registry.getSingleMetric(NAME) as Counter<'endpoint' | 'reason'> | undefined;
    this.refusals =
      existing ??
      new Counter({
        name: NAME,
        help: 'Admin port requests refused, by endpoint (connections, shutdown, app-health, other) and reason (not_loopback, disabled, method_not_allowed, unknown_probe, not_found).',
        labelNames: ['endpoint', 'reason'],
        registers: [registry],
      });
    for (const [endpoint, reason] of ADMIN_REFUSALS) this.refusals.inc({ endpoint, reason }, 0);
  }

  refused(endpoint: AdminEndpoint, reason: AdminRefusalReason): void {
    this.refusals.inc({ endpoint, reason });
  }
}
