import { request } from 'node:http';
import { networkInterfaces } from 'node:os';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AdminServer, type AdminServerOptions } from '../../../src/data-plane/admin/admin-server.ts';
import { readSidecarConfig } from '../../../src/data-plane/sidecar/sidecar-env.ts';
import { createLogger } from '../../../src/common/log/logger.ts';
import { RequestLog } from '../../../src/data-plane/sidecar/request-log.ts';
import { Sidecar } from '../../../src/data-plane/sidecar/sidecar.ts';
import { meshOfTwo, type MeshOfTwo } from '../sidecar/mesh-of-two.ts';
import { meshlet } from '../metrics-cli/support.ts';
import { startSidecarProcess } from './sidecar-process.ts';

/**
 * Issue 11 item 8 — what the admin port tells the network. The admin port listens on the pod
 * IP (kubelet probes from the node, Prometheus scrapes), so any pod could read /connections
 * (who talks to whom, with addresses) and POST /shutdown was always on (an SSRF in the app
 * stopped the sidecar). Now:
 *   network callers: /live /ready /metrics /app-health/<declared probe>  — nothing else;
 *   loopback only:   /connections (unless MESHLET_ADMIN_CONNECTIONS=network);
 *   loopback + POST + MESHLET_ADMIN_SHUTDOWN=true: /shutdown (off by default).
 *
 * "The network" is a real non-loopback address of this machine (its first non-internal
 * interface): the client binds it as its source, so the admin server sees that address as
 * the peer, exactly as it sees the node's or another pod's address.
 */
function firstAddress(family: 'IPv4' | 'IPv6'): string | undefined {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === family && !a.internal && !a.address.startsWith('fe80:')) return a.address;
  }
  return undefined;
}
const NET4 = firstAddress('IPv4');
const NET6 = firstAddress('IPv6');
const noNetwork = NET4 === undefined;
if (noNetwork) console.warn('[admin-exposure] SKIPPED: this machine has no non-loopback IPv4 address to call the admin port from');

interface Answer {
  status: number;
  body: string;
}

/** One HTTP request from `from` (the source address) to host:port. */
function call(host: string, port: number, path: string, opts: { method?: string; from?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, method: opts.method ?? 'GET', ...(opts.from ? { localAddress: opts.from } : {}), agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function logCapture() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l !== '') lines.push(JSON.parse(l));
      cb();
    },
  });
  return { lines, logger: createLogger({ name: 'sidecar', level: 'info', destination: stream }) };
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function startAdmin(host: string, opts: Partial<AdminServerOptions> = {}) {
  const log = logCapture();
  const registry = new Registry();
  const app: Server = createServer((_req, res) => res.writeHead(200).end('ok'));
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => app.close(() => r())));
  const admin = new AdminServer({
    readiness: () => ({ ready: true, checks: {} }),
    registry,
    connections: () => [{ id: 1, direction: 'inbound', peerIdentity: 'spiffe://cluster.local/ns/web/sa/frontend' }],
    appProbes: { 'web/liveness': { port: (app.address() as AddressInfo).port, path: '/healthz', scheme: 'HTTP' } },
    requestLog: new RequestLog(log.logger),
    ...opts,
  });
  const { port } = await admin.listen(0, host);
  cleanups.push(() => admin.close());
  const refusals = async (endpoint: string, reason: string) => {
    const text = (await registry.getSingleMetricAsString('meshlet_admin_refusals_total')).split('\n');
    const line = text.find((l) => l.includes(`endpoint="${endpoint}"`) && l.includes(`reason="${reason}"`));
    return Number(line?.split(' ').pop());
  };
  return { port, log, refusals };
}

describe.skipIf(noNetwork)('admin port exposure (issue 11 item 8), AdminServer on 0.0.0.0 as the sidecar binds it', () => {
  it('kubelet and Prometheus keep working from the network: /live, /ready, /metrics, /app-health', async () => {
    const a = await startAdmin('0.0.0.0');
    for (const path of ['/live', '/ready', '/metrics', '/app-health/web/liveness']) {
      const res = await call(NET4!, a.port, path, { from: NET4 });
      expect(res.status, path).toBe(200);
    }
    expect((await call(NET4!, a.port, '/metrics', { from: NET4 })).body).toContain('# TYPE meshlet_admin_refusals_total counter');
  });

  it('/connections (who talks to whom) answers loopback only: 403 from the network, counted and logged with the caller address', async () => {
    const a = await startAdmin('0.0.0.0');
    const fromNetwork = await call(NET4!, a.port, '/connections', { from: NET4 });
    expect(fromNetwork.status).toBe(403);
    expect(JSON.parse(fromNetwork.body)).toMatchObject({ error: 'forbidden', reason: expect.stringContaining('MESHLET_ADMIN_CONNECTIONS=network') });
    expect(fromNetwork.body).not.toContain('spiffe://');
    expect((await call(NET4!, a.port, '/connections', { from: NET4, method: 'HEAD' })).status).toBe(403);
    const fromLoopback = await call('127.0.0.1', a.port, '/connections');
    expect(fromLoopback.status).toBe(200);
    expect(JSON.parse(fromLoopback.body).connections).toHaveLength(1);
    expect(await a.refusals('connections', 'not_loopback')).toBe(2);
    expect(a.log.lines[0]).toMatchObject({ level: 'warn', event: 'admin_refused', endpoint: 'connections', reason: 'not_loopback', path: '/connections', remoteAddress: NET4 });
  });

  it('MESHLET_ADMIN_CONNECTIONS=network opens /connections to the pod IP', async () => {
    const a = await startAdmin('0.0.0.0', { connectionsAccess: 'network' });
    expect((await call(NET4!, a.port, '/connections', { from: NET4 })).status).toBe(200);
  });

  it('/shutdown, when enabled, stops the sidecar only on a POST from loopback; the network gets 403 whatever the method', async () => {
    let stops = 0;
    const a = await startAdmin('0.0.0.0', { onShutdown: () => stops++ });
    expect((await call(NET4!, a.port, '/shutdown', { from: NET4, method: 'POST' })).status).toBe(403);
    expect((await call(NET4!, a.port, '/shutdown', { from: NET4 })).status).toBe(403);
    expect(stops).toBe(0);
    // The GET an SSRF typically gives cannot stop it either.
    expect((await call('127.0.0.1', a.port, '/shutdown')).status).toBe(405);
    expect(stops).toBe(0);
    expect((await call('127.0.0.1', a.port, '/shutdown', { method: 'POST' })).status).toBe(202);
    expect(stops).toBe(1);
    expect(await a.refusals('shutdown', 'not_loopback')).toBe(2);
    expect(await a.refusals('shutdown', 'method_not_allowed')).toBe(1);
  });

  it('/shutdown is off unless enabled: 404 from loopback and from the network, and not listed', async () => {
    const a = await startAdmin('0.0.0.0');
    const res = await call('127.0.0.1', a.port, '/shutdown', { method: 'POST' });
    expect(res.status).toBe(404);
    expect(JSON.parse(res.body)).toEqual({ error: 'not_found', reason: 'the shutdown endpoint is disabled (MESHLET_ADMIN_SHUTDOWN=false)' });
    expect((await call(NET4!, a.port, '/shutdown', { from: NET4, method: 'POST' })).status).toBe(404);
    expect(await a.refusals('shutdown', 'disabled')).toBe(2);
    expect(JSON.parse((await call('127.0.0.1', a.port, '/nowhere')).body).paths).not.toContain('/shutdown');
  });

  it.skipIf(NET6 === undefined)('dual-stack (::): an IPv6 network caller is not loopback; ::1 and IPv4-mapped 127.0.0.1 are', async () => {
    let stops = 0;
    const a = await startAdmin('::', { onShutdown: () => stops++ });
    expect((await call(NET6!, a.port, '/connections', { from: NET6 })).status).toBe(403);
    expect((await call(NET6!, a.port, '/shutdown', { from: NET6, method: 'POST' })).status).toBe(403);
    expect((await call(NET4!, a.port, '/connections', { from: NET4 })).status).toBe(403); // ::ffff:<pod IP>
    expect((await call(NET6!, a.port, '/metrics', { from: NET6 })).status).toBe(200);
    expect((await call('::1', a.port, '/connections')).status).toBe(200);
    expect((await call('127.0.0.1', a.port, '/connections')).status).toBe(200); // ::ffff:127.0.0.1
    expect(stops).toBe(0);
    expect((await call('::1', a.port, '/shutdown', { method: 'POST' })).status).toBe(202);
    expect(stops).toBe(1);
  });
});

describe.skipIf(noNetwork)('a real sidecar, admin on 0.0.0.0 (the injected default), default environment', () => {
  let mesh: MeshOfTwo;
  let orders: Sidecar;
  let frontend: Sidecar;
  let ordersAdmin: number;
  let frontendAdmin: number;

  beforeAll(async () => {
    mesh = await meshOfTwo();
    const quiet = { logger: createLogger({ name: 'sidecar', level: 'fatal' }) };
    orders = new Sidecar(readSidecarConfig({ ...mesh.ordersEnv, MESHLET_ADMIN_ADDRESS: '0.0.0.0' }), quiet);
    frontend = new Sidecar(readSidecarConfig({ ...mesh.frontendEnv, MESHLET_ADMIN_ADDRESS: '0.0.0.0', MESHLET_ADMIN_SHUTDOWN: 'true', MESHLET_ADMIN_CONNECTIONS: 'network' }), quiet);
    [{ admin: ordersAdmin }, { admin: frontendAdmin }] = await Promise.all([orders.start(), frontend.start()]);
  });

  afterAll(async () => {
    await Promise.all([orders?.stop(), frontend?.stop()]);
    await mesh?.close();
  });

  it('serves probes and metrics to the network, /connections to loopback only; POST /shutdown is off (404)', async () => {
    expect((await call(NET4!, ordersAdmin, '/ready', { from: NET4 })).status).toBe(200);
    expect((await call(NET4!, ordersAdmin, '/metrics', { from: NET4 })).status).toBe(200);
    expect((await call(NET4!, ordersAdmin, '/connections', { from: NET4 })).status).toBe(403);
    expect((await call('127.0.0.1', ordersAdmin, '/connections')).status).toBe(200);
    expect((await call('127.0.0.1', ordersAdmin, '/shutdown', { method: 'POST' })).status).toBe(404);
    expect((await call('127.0.0.1', ordersAdmin, '/ready')).status).toBe(200);
  });

  it('`meshlet connections` works on loopback (kubectl exec / port-forward) and says why on the pod IP; `meshlet top` works from either', async () => {
    const local = await meshlet('connections', '--admin', `http://127.0.0.1:${ordersAdmin}`, '--output', 'json');
    expect(local.stderr).toBe('');
    expect(local.status).toBe(0);
    expect(JSON.parse(local.stdout)).toHaveProperty('connections');
    const remote = await meshlet('connections', '--admin', `http://${NET4}:${ordersAdmin}`);
    expect(remote.status).toBe(1);
    expect(remote.stderr).toContain('ADMIN_BAD_RESPONSE');
    expect(remote.stderr).toContain('HTTP 403 (/connections answers loopback callers only');
    const top = await meshlet('top', '--admin', `http://${NET4}:${ordersAdmin}`, '--once', '--interval', '100ms', '--output', 'json');
    expect(top.stderr).toBe('');
    expect(top.status).toBe(0);
  });

  it('MESHLET_ADMIN_CONNECTIONS=network serves /connections on the pod IP', async () => {
    expect((await call(NET4!, frontendAdmin, '/connections', { from: NET4 })).status).toBe(200);
  });

  it('MESHLET_ADMIN_SHUTDOWN=true: the network cannot stop the sidecar; a loopback POST drains it', async () => {
    expect((await call(NET4!, frontendAdmin, '/shutdown', { from: NET4, method: 'POST' })).status).toBe(403);
    expect((await call('127.0.0.1', frontendAdmin, '/shutdown')).status).toBe(405);
    expect((await call('127.0.0.1', frontendAdmin, '/ready')).status).toBe(200);
    expect((await call('127.0.0.1', frontendAdmin, '/shutdown', { method: 'POST' })).status).toBe(202);
    await frontend.stopped;
    expect(frontend.readiness().checks.listeners).toEqual({ ok: false, detail: 'draining' });
  });
});

describe.skipIf(noNetwork)('a real `meshlet sidecar` process with the injected defaults (admin on 0.0.0.0)', () => {
  it('network: probes and metrics yes, /connections and /shutdown no; loopback: /connections yes, /shutdown off', async () => {
    const mesh = await meshOfTwo();
    const sidecar = await startSidecarProcess({ ...mesh.ordersEnv, MESHLET_ADMIN_ADDRESS: '0.0.0.0', MESHLET_LOG_LEVEL: 'info' });
    try {
      const port = mesh.ports.ordersAdmin;
      expect((await call(NET4!, port, '/ready', { from: NET4 })).status).toBe(200);
      expect((await call(NET4!, port, '/metrics', { from: NET4 })).status).toBe(200);
      expect((await call(NET4!, port, '/connections', { from: NET4 })).status).toBe(403);
      expect((await call(NET4!, port, '/shutdown', { from: NET4, method: 'POST' })).status).toBe(404);
      expect((await call('127.0.0.1', port, '/connections')).status).toBe(200);
      expect((await call('127.0.0.1', port, '/shutdown', { method: 'POST' })).status).toBe(404);
      expect((await call('127.0.0.1', port, '/ready')).status).toBe(200);
      const metrics = (await call('127.0.0.1', port, '/metrics')).body;
      expect(metrics).toContain('meshlet_admin_refusals_total{endpoint="connections",reason="not_loopback"} 1');
      expect(metrics).toContain('meshlet_admin_refusals_total{endpoint="shutdown",reason="disabled"} 2');
    } finally {
      expect(await sidecar.stop()).toBe(0);
      await mesh.close();
    }
    expect(sidecar.stderr()).toContain(`"event":"admin_refused","endpoint":"connections","reason":"not_loopback","method":"GET","path":"/connections","remoteAddress":"${NET4}"`);
  });
});
