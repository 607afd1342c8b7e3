import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { http } from '../../common/net/node-http.ts';
import { isIPv4, type AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { negotiateFormat, OPENMETRICS_TEXT, PROMETHEUS_TEXT, renderMetrics } from '../metrics/exposition.ts';
import type { AppProbe } from '../sidecar/sidecar-env.ts';
import type { AdminEndpoint, AdminRefusalReason, RequestLog } from '../sidecar/request-log.ts';
import { fetchAppMetrics, mergeExpositions, scrapeTimeoutMs, targetLabel, type AppMetricsTarget } from './app-metrics.ts';
import { AdminMetrics } from './admin-metrics.ts';
import { probeDeadlineMs, runAppProbe } from './app-health.ts';
import { ConnectionGuard } from '../../common/net/connection-guard.ts';
import type { DescriptorDemand } from '../../common/net/descriptor-budget.ts';

/** Default cap of the admin port: kubelet probes and scrapes are few and short. */
export const ADMIN_MAX_CONNECTIONS = 64;
/** Default time a caller of the admin port has for its request head (probes and scrapes send it at once). */
export const ADMIN_HEADERS_TIMEOUT_MS = 10_000;

/**
 * The admin port's share of a process's open-files budget (src/common/net/descriptor-budget.ts): one
 * port, never lowered (it must keep answering probes when the other listeners are full). A
 * port that forwards app probes (the sidecar's) holds two descriptors per connection, the
 * probe and its connection to the app; one that forwards nothing (the identity service's, the
 * injector's) holds one.
 */
export function adminDescriptorDemand(options: { maxConnections?: number; forwardsAppProbes?: boolean } = {}): DescriptorDemand {
  return { listener: 'admin', ports: 1, maxConnections: options.maxConnections ?? ADMIN_MAX_CONNECTIONS, perConnection: options.forwardsAppProbes ? 2 : 1, clampable: false };
}

/**
 * The sidecar's admin port: /live, /ready, /metrics, /connections, /app-health/…, /shutdown.
 *
 * It is plain HTTP on purpose: kubelet probes and Prometheus scrapes come here, never
 * through the mTLS listeners, so STRICT mTLS and default-deny policies cannot break them
 * (the most common pain with other meshes). It exposes no app data: app probes are answered
 * with the app's status code only.
 *
 * Who may ask what (issue 11 item 8; README "The sidecar"):
 * - the network (kubelet from the node, Prometheus, any pod that reaches the pod IP):
 *   /live, /ready, /metrics, /app-health/<a probe the pod declares>.
 * - loopback only, unless `connectionsAccess: 'network'`: /connections — the list of who
 *   talks to whom, down to addresses and ports. `kubectl exec` and `kubectl port-forward`
 *   arrive on loopback (the runtime dials localhost inside the pod's network namespace).
 * - loopback only, POST only, and only when enabled (`onShutdown`): /shutdown. Off by
 *   default: an SSRF in the app would otherwise stop the sidecar (Linkerd turned its
 *   equivalent off by default for that reason).
 * Loopback means a peer address in 127.0.0.0/8 or ::1 (IPv4-mapped too): in the pod's network
 * namespace only the pod's own processes have one (the kernel drops such sources arriving
 * from outside as martians).
 */
export interface ReadinessCheck {
  /** e.g. "svid", "policy", "listeners" -> whether that part is ready, and why not. */
  (): { ready: boolean; checks: Record<string, { ok: boolean; detail?: string }> };
}

export interface AdminServerOptions {
  readiness: ReadinessCheck;
  registry: Registry;
  connections: () => unknown[];
  appProbes?: Readonly<Record<string, AppProbe>>;
  appAddress?: string;
  /** The app's own metrics endpoint, served merged with the sidecar's at /metrics/merged (app-metrics.ts); absent: that path is 404. */
  appMetrics?: AppMetricsTarget | null;
  /**
   * Upper bound on an app probe, in ms. Each probe already gets a little less than its own
   * kubelet timeout (timeoutSeconds, default 1 s: 800 ms), so kubelet hears the sidecar's answer.
   */
  probeTimeoutMs?: number;
  /**
   * POST /shutdown from loopback: how a Job's app tells a non-native sidecar to exit.
   * Absent: the endpoint is disabled and answers 404 (MESHLET_ADMIN_SHUTDOWN=false, the default).
   */
  onShutdown?: () => void;
  /** Who may read /connections: `loopback` (default) or any `network` caller. */
  connectionsAccess?: ConnectionsAccess;
  /** Where refusals are logged (rate limited); none: counted only. */
  requestLog?: RequestLog;
  /** Cap and refusal counting of the port (src/common/net/connection-guard.ts); default ADMIN_MAX_CONNECTIONS, not counted. */
  guard?: ConnectionGuard;
  /** A connection that has not sent a whole request head by then is answered 408 and closed. Default ADMIN_HEADERS_TIMEOUT_MS. */
  headersTimeoutMs?: number;
}

export type ConnectionsAccess = 'loopback' | 'network';

/** 127.0.0.0/8, ::1, and their IPv4-mapped forms (a dual-stack listener reports those). */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (address === undefined) return false;
  if (address === '::1') return true;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return isIPv4(v4) && v4.startsWith('127.');
}

export class AdminServer {
  readonly server: Server;
  readonly #opts: AdminServerOptions;
  /** Own entries only: a plain object would answer /app-health/__proto__ from Object.prototype. */
  readonly #probes: ReadonlyMap<string, AppProbe>;
  readonly #metrics: AdminMetrics;

  constructor(opts: AdminServerOptions) {
    this.#opts = opts;
    this.#probes = new Map(Object.entries(opts.appProbes ?? {}));
    this.#metrics = new AdminMetrics(opts.registry);
    if (opts.appMetrics) this.#metrics.mergesAppMetrics();
    this.server = http.createServer(ConnectionGuard.httpServerOptions(opts.headersTimeoutMs ?? ADMIN_HEADERS_TIMEOUT_MS), (req, res) => {
      this.#route(req, res).catch((err: Error) => {
        if (!res.headersSent) json(res, 500, { error: 'internal', message: err.message });
        else res.destroy();
      });
    });
    (opts.guard ?? new ConnectionGuard({ listener: 'admin', maxConnections: ADMIN_MAX_CONNECTIONS })).protectHttp(this.server);
  }

  listen(port: number, host = '0.0.0.0'): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  async #route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?', 1)[0]!;
    if (path === '/shutdown') return this.#shutdown(req, res, path);
    if (req.method !== 'GET' && req.method !== 'HEAD') return this.#refuse(req, res, path, 'other', 'method_not_allowed', 405, { error: 'method_not_allowed' });
    if (path === '/live') return text(res, 200, 'live\n');
    if (path === '/ready') {
      const r = this.#opts.readiness();
      return json(res, r.ready ? 200 : 503, { ready: r.ready, checks: r.checks });
    }
    if (path === '/metrics') {
      const format = negotiateFormat(req.headers.accept);
      const body = await renderMetrics(this.#opts.registry, format);
      res.writeHead(200, { 'content-type': format === 'openmetrics' ? OPENMETRICS_TEXT : PROMETHEUS_TEXT });
      res.end(body);
      return;
    }
    if (path === '/metrics/merged' && this.#opts.appMetrics) {
      // The app's families, then the sidecar's (text format: two formats cannot be concatenated).
      const target = this.#opts.appMetrics;
      const app = await fetchAppMetrics(target, scrapeTimeoutMs(req.headers['x-prometheus-scrape-timeout-seconds']), this.#opts.appAddress ?? '127.0.0.1');
      if (!app.ok) this.#metrics.appMetricsFailed(app.reason);
      // Set before rendering: this scrape reports its own fetch.
      this.#metrics.appMetricsUp.set({ target: targetLabel(target) }, app.ok ? 1 : 0);
      const own = await renderMetrics(this.#opts.registry, 'text');
      res.writeHead(200, { 'content-type': PROMETHEUS_TEXT });
      res.end(mergeExpositions(app, own));
      return;
    }
    if (path === '/connections') {
      if ((this.#opts.connectionsAccess ?? 'loopback') === 'loopback' && !isLoopbackAddress(req.socket.remoteAddress)) {
        return this.#refuse(req, res, path, 'connections', 'not_loopback', 403, {
          error: 'forbidden',
          reason: '/connections answers loopback callers only (kubectl exec, kubectl port-forward); MESHLET_ADMIN_CONNECTIONS=network opens it to the pod IP',
        });
      }
      return json(res, 200, { connections: this.#opts.connections() });
    }
    if (path.startsWith('/app-health/')) return this.#appHealth(req, res, path);
    const paths = ['/live', '/ready', '/metrics', ...(this.#opts.appMetrics ? ['/metrics/merged'] : []), '/connections', '/app-health/<container>/<kind>', ...(this.#opts.onShutdown ? ['/shutdown'] : [])];
    return this.#refuse(req, res, path, 'other', 'not_found', 404, { error: 'not_found', paths });
  }

  #shutdown(req: IncomingMessage, res: ServerResponse, path: string): void {
    if (!this.#opts.onShutdown) return this.#refuse(req, res, path, 'shutdown', 'disabled', 404, { error: 'not_found', reason: 'the shutdown endpoint is disabled (MESHLET_ADMIN_SHUTDOWN=false)' });
    // Only the pod itself may stop its sidecar: loopback callers, never the network.
    if (!isLoopbackAddress(req.socket.remoteAddress)) return this.#refuse(req, res, path, 'shutdown', 'not_loopback', 403, { error: 'forbidden', reason: 'shutdown is accepted from loopback only' });
    // POST only: the GET an SSRF usually gives an attacker cannot stop the sidecar.
    if (req.method !== 'POST') return this.#refuse(req, res, path, 'shutdown', 'method_not_allowed', 405, { error: 'method_not_allowed', allow: 'POST' });
    json(res, 202, { shutdown: 'draining' });
    this.#opts.onShutdown();
  }

  #refuse(req: IncomingMessage, res: ServerResponse, path: string, endpoint: AdminEndpoint, reason: AdminRefusalReason, status: number, body: unknown): void {
    this.#metrics.refused(endpoint, reason);
    this.#opts.requestLog?.adminRefused({ endpoint, reason, method: req.method ?? '', path, remoteAddress: req.socket.remoteAddress ?? '' });
    json(res, status, body);
  }

  #appHealth(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> | void {
    const key = path.slice('/app-health/'.length);
    const probe = this.#probes.get(key);
    if (probe === undefined) return this.#refuse(req, res, path, 'app-health', 'unknown_probe', 404, { error: 'unknown_probe' });
    // The app's HTTP status passes through (kubelet treats 200-399 as success); a gRPC or TCP
    // check answers 200 or 503. The reason is in the body, never app data.
    return runAppProbe(probe, this.#opts.appAddress ?? '127.0.0.1', probeDeadlineMs(probe, this.#opts.probeTimeoutMs)).then((a) => {
      if (!res.headersSent && !res.destroyed) text(res, a.status, `app probe ${key}: ${a.body}\n`);
    });
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) });
  res.end(payload);
}

function text(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
