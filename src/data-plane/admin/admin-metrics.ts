import { Counter, Gauge, type Registry } from 'prom-client';
import type { AppMetricsFailure } from './app-metrics.ts';
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
const APP_METRICS_FAILURES = 'meshlet_app_metrics_failures_total';
const APP_METRICS_UP = 'meshlet_app_metrics_up';
const APP_METRICS_REASONS: readonly AppMetricsFailure[] = ['refused', 'timeout', 'status', 'too_large', 'openmetrics'];

/**
 * meshlet_admin_refusals_total{endpoint, reason}: admin requests refused — /connections or
 * /shutdown from the network, /shutdown while disabled, probe names the pod does not have
 * (e.g. /app-health/__proto__), unknown paths. A rising `not_loopback` series is someone
 * on the network probing the admin port.
 */
export class AdminMetrics {
  readonly refusals: Counter<'endpoint' | 'reason'>;
  /** meshlet_app_metrics_failures_total{reason}: scrapes of /metrics/merged that could not include the app's metrics. */
  readonly appMetricsFailures: Counter<'reason'>;
  /** meshlet_app_metrics_up{target}: 1 when the last /metrics/merged scrape included the app's metrics. */
  readonly appMetricsUp: Gauge<'target'>;

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
    this.appMetricsFailures =
      (registry.getSingleMetric(APP_METRICS_FAILURES) as Counter<'reason'> | undefined) ??
      new Counter({
        name: APP_METRICS_FAILURES,
        help: "Scrapes of /metrics/merged served without the app's metrics, by reason (refused, timeout, status, too_large, openmetrics).",
        labelNames: ['reason'],
        registers: [registry],
      });
    this.appMetricsUp =
      (registry.getSingleMetric(APP_METRICS_UP) as Gauge<'target'> | undefined) ??
      new Gauge({
        name: APP_METRICS_UP,
        help: "1 when the last scrape of /metrics/merged included the app's own metrics (target PORT/PATH), else 0.",
        labelNames: ['target'],
        registers: [registry],
      });
  }

  /** A sidecar that merges the app's metrics exports every reason from 0 (rate() sees the first failure); one that does not, none. */
  mergesAppMetrics(): void {
    for (const reason of APP_METRICS_REASONS) this.appMetricsFailures.inc({ reason }, 0);
  }

  appMetricsFailed(reason: AppMetricsFailure): void {
    if (!APP_METRICS_REASONS.includes(reason)) return;
    this.appMetricsFailures.inc({ reason });
  }

  refused(endpoint: AdminEndpoint, reason: AdminRefusalReason): void {
    this.refusals.inc({ endpoint, reason });
  }
}
