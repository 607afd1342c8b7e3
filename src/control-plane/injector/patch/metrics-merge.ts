import { ADMIN_PORT } from './pod-layout.ts';

/** The path on the admin port that serves the app's metrics merged with the sidecar's. */
export const MERGED_METRICS_PATH = '/metrics/merged';
export const PROMETHEUS_SCRAPE = 'prometheus.io/scrape';
export const PROMETHEUS_PORT = 'prometheus.io/port';
export const PROMETHEUS_PATH = 'prometheus.io/path';
export const PROMETHEUS_SCHEME = 'prometheus.io/scheme';

/** What the injector does with a pod's Prometheus annotations. */
export type MetricsPlan =
  /** No scrape annotation: the pod gets the sidecar's own (`/metrics` on the admin port). */
  | { readonly kind: 'sidecar'; readonly annotations: Readonly<Record<string, string>> }
  /** The app is scraped: the annotations move to the admin port's merged endpoint; the sidecar fetches the app's. */
  | { readonly kind: 'merge'; readonly annotations: Readonly<Record<string, string>>; readonly appMetrics: string }
  /** Left as the pod has them, with the reason (a warning when a scrape will now fail). */
  | { readonly kind: 'keep'; readonly warning: string | null };

/**
 * Decides from the pod's annotations (Prometheus' kubernetes_sd convention:
 * prometheus.io/scrape, /port, /path, /scheme — the one deploy/monitoring's scrape config and
 * most Helm charts use). Under STRICT mTLS a plaintext scrape of the app's port is refused, so
 * an app that asks to be scraped on a port the sidecar intercepts is scraped through the
 * sidecar instead (Istio's metrics merging), unless `meshlet.io/merge-metrics: "false"` (`merge`).
 */
export function planMetrics(annotations: Readonly<Record<string, string>> | undefined, merge: boolean, interceptedPort: (port: number) => boolean): MetricsPlan {
  const a = annotations ?? {};
  const scrape = a[PROMETHEUS_SCRAPE];
  if (scrape === undefined) {
    return { kind: 'sidecar', annotations: { [PROMETHEUS_SCRAPE]: 'true', [PROMETHEUS_PORT]: String(ADMIN_PORT), [PROMETHEUS_PATH]: '/metrics' } };
  }
  if (scrape !== 'true') return { kind: 'keep', warning: null };
  if (!merge) return { kind: 'keep', warning: null };
  const rawPort = a[PROMETHEUS_PORT];
  if (rawPort === undefined || !/^\d{1,5}$/.test(rawPort) || Number(rawPort) < 1 || Number(rawPort) > 65535) {
    return {
      kind: 'keep',
      warning: `${PROMETHEUS_SCRAPE} is "true" but ${PROMETHEUS_PORT} is ${rawPort === undefined ? 'absent' : JSON.stringify(rawPort)}: meshlet cannot tell which port to merge, and a plaintext scrape of a meshed port is refused; set ${PROMETHEUS_PORT} to the app's metrics port`,
    };
  }
  const port = Number(rawPort);
  if (port === ADMIN_PORT) return { kind: 'keep', warning: null };
  if (!interceptedPort(port)) return { kind: 'keep', warning: null };
  if ((a[PROMETHEUS_SCHEME] ?? 'http').toLowerCase() === 'https') {
    return { kind: 'keep', warning: `${PROMETHEUS_SCHEME} is "https": the app's own TLS metrics endpoint is not merged; the scrape of port ${port} is refused under STRICT unless the port is in meshlet.io/skip-inbound-ports` };
  }
  const path = a[PROMETHEUS_PATH] || '/metrics';
  if (!path.startsWith('/') || /\s/.test(path)) {
    return { kind: 'keep', warning: `${PROMETHEUS_PATH} ${JSON.stringify(path)} is not a path: not merged` };
  }
  return { kind: 'merge', annotations: { [PROMETHEUS_PORT]: String(ADMIN_PORT), [PROMETHEUS_PATH]: MERGED_METRICS_PATH }, appMetrics: `${port}${path}` };
}
