import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { negotiateFormat, OPENMETRICS_TEXT, PROMETHEUS_TEXT, renderMetrics } from '../metrics/exposition.ts';
import type { AppProbe } from '../config/sidecar-env.ts';

/**
 * The sidecar's admin port: /live, /ready, /metrics, /connections, /app-health/…, /shutdown.
 *
 * It is plain HTTP on purpose: kubelet probes and Prometheus scrapes come here, never
 * through the mTLS listeners, so STRICT mTLS and default-deny policies cannot break them
 * (the most common pain with other meshes). It exposes no app data: app probes are answered
 * with the app's status code only.
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
  /** Probe forwarding timeout; kubelet's own timeout is usually 1 s. */
  probeTimeoutMs?: number;
  /** POST /shutdown from loopback: how a Job's app tells a non-native sidecar to exit. */
  onShutdown?: () => void;
}

export class AdminServer {
  readonly server: Server;
  readonly #opts: AdminServerOptions;

  constructor(opts: AdminServerOptions) {
    this.#opts = opts;
    this.server = createServer((req, res) => {
      this.#route(req, res).catch((err: Error) => {
        if (!res.headersSent) json(res, 500, { error: 'internal', message: err.message });
        else res.destroy();
      });
    });
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
    if (path === '/shutdown') return this.#shutdown(req, res);
    if (req.method !== 'GET' && req.method !== 'HEAD') return json(res, 405, { error: 'method_not_allowed' });
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
    if (path === '/connections') return json(res, 200, { connections: this.#opts.connections() });
    if (path.startsWith('/app-health/')) return this.#appHealth(path.slice('/app-health/'.length), res);
    return json(res, 404, { error: 'not_found', paths: ['/live', '/ready', '/metrics', '/connections', '/app-health/<container>/<kind>', '/shutdown'] });
  }

  #shutdown(req: IncomingMessage, res: ServerResponse): void {
    const from = req.socket.remoteAddress ?? '';
    if (req.method !== 'POST') return json(res, 405, { error: 'method_not_allowed' });
    // Only the pod itself may stop its sidecar: loopback callers, never the network.
    if (!(from === '127.0.0.1' || from === '::1' || from === '::ffff:127.0.0.1')) return json(res, 403, { error: 'forbidden', reason: 'shutdown is accepted from loopback only' });
    if (!this.#opts.onShutdown) return json(res, 404, { error: 'not_found' });
    json(res, 202, { shutdown: 'draining' });
    this.#opts.onShutdown();
  }

  #appHealth(key: string, res: ServerResponse): void {
    const probe = this.#opts.appProbes?.[key];
    if (!probe) return json(res, 404, { error: 'unknown_probe', probe: key });
    const headers: Record<string, string> = { 'user-agent': 'meshlet-probe' };
    for (const h of probe.headers ?? []) headers[h.name] = h.value;
    const send = probe.scheme === 'HTTPS' ? httpsRequest : httpRequest;
    const upstream = send(
      {
        host: this.#opts.appAddress ?? '127.0.0.1',
        port: probe.port,
        path: probe.path,
        method: 'GET',
        headers,
        timeout: this.#opts.probeTimeoutMs ?? 1_000,
        // The app's own HTTPS probe targets are self-signed as often as not; kubelet does
        // not verify them either.
        rejectUnauthorized: false,
      },
      (up) => {
        up.resume();
        // Kubelet treats 200-399 as success: pass the app's status through unchanged.
        up.on('end', () => text(res, up.statusCode ?? 502, `app probe ${key}: ${up.statusCode}\n`));
      },
    );
    upstream.on('timeout', () => upstream.destroy(new Error('timeout')));
    upstream.on('error', (err) => {
      if (!res.headersSent) text(res, 503, `app probe ${key} failed: ${err.message}\n`);
    });
    upstream.end();
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
