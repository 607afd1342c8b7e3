// Issue 14 item 5: the sidecar's admin port runs the app's grpc, tcp and http probes for real,
// against real servers: a dead app fails its probe. The probes come from the injector (a pod
// with the servers' ports goes through injectPod), the sidecar reads them from the
// MESHLET_APP_PROBES the patch carries, and kubelet's side is the rewritten probe's path.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { AdminServer } from '../../../src/data-plane/admin/admin-server.ts';
import { decodeHealthCheckResponse, encodeHealthCheckRequest } from '../../../src/data-plane/admin/app-health.ts';
import { readSidecarConfig } from '../../../src/data-plane/sidecar/sidecar-env.ts';
import { applyJsonPatch, DEFAULT_INJECTION_SETTINGS, injectPod, type Pod } from '../../../src/control-plane/injector/patch/index.ts';

const HEALTH_PROTO = fileURLToPath(new URL('../../fixtures/grpc/health.proto', import.meta.url));
const STATUS = { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 } as const;

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A real grpc-js server implementing grpc.health.v1.Health/Check from a table the test changes. */
async function startGrpcHealthServer() {
  const pkg = protoLoader.loadSync(HEALTH_PROTO, { keepCase: true, enums: String, defaults: true });
  const health = (grpc.loadPackageDefinition(pkg) as any).grpc.health.v1.Health;
  const statuses = new Map<string, keyof typeof STATUS>([['', 'SERVING']]);
  const asked: string[] = [];
  let hang = false;
  const server = new grpc.Server();
  server.addService(health.service, {
    Check(call: grpc.ServerUnaryCall<{ service: string }, unknown>, callback: grpc.sendUnaryData<unknown>) {
      asked.push(call.request.service);
      if (hang) return; // never answers
      const status = statuses.get(call.request.service);
      if (status === undefined) return callback({ code: grpc.status.NOT_FOUND, details: `unknown service ${call.request.service}` });
      callback(null, { status });
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  let stopped = false;
  const stop = () =>
    new Promise<void>((resolve) => {
      if (stopped) return resolve();
      stopped = true;
      server.forceShutdown();
      resolve();
    });
  cleanups.push(stop);
  return { port, statuses, asked, stop, setHang: (h: boolean) => (hang = h) };
}

async function startTcpApp() {
  const sockets = new Set<import('node:net').Socket>();
  const server: TcpServer = createTcpServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  let closed = false;
  const close = () =>
    new Promise<void>((resolve) => {
      if (closed) return resolve();
      closed = true;
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  cleanups.push(close);
  return { port: (server.address() as AddressInfo).port, close, accepted: () => sockets.size };
}

async function startHttpApp(handler: (url: string, res: import('node:http').ServerResponse) => void) {
  const server: HttpServer = createHttpServer((req, res) => handler(req.url ?? '', res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  );
  return { port: (server.address() as AddressInfo).port };
}

/**
 * Injects a pod whose container `app` declares only `declaredPort` (other ports are undeclared,
 * so iptables would send kubelet to the catch-all), then starts the admin server the way the
 * sidecar does, from the patch's MESHLET_APP_PROBES. Returns kubelet's view: the rewritten
 * probes' URLs.
 */
async function injectAndServe(declaredPort: number, probes: { livenessProbe?: object; readinessProbe?: object; startupProbe?: object }) {
  const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'shop' }, spec: { containers: [{ name: 'app', image: 'app:1', ports: [{ name: 'grpc', containerPort: declaredPort, appProtocol: 'grpc' }], ...probes }] } } as unknown as Pod;
  const result = injectPod(pod, 'shop', DEFAULT_INJECTION_SETTINGS);
  if (result.outcome !== 'injected') throw new Error('not injected');
  const patched = applyJsonPatch(pod, result.patch) as Pod;
  const proxy = patched.spec.initContainers!.find((c) => c.name === 'meshlet-proxy')!;
  const appProbesEnv = (proxy.env as { name: string; value?: string }[]).find((e) => e.name === 'MESHLET_APP_PROBES')!.value!;
  const config = readSidecarConfig({ MESHLET_NAMESPACE: 'shop', MESHLET_SERVICE_ACCOUNT: 'app', MESHLET_APP_PROBES: appProbesEnv });
  const admin = new AdminServer({ readiness: () => ({ ready: true, checks: {} }), registry: new Registry(), connections: () => [], appProbes: config.appProbes, appAddress: config.appAddress });
  const addr = await admin.listen(0, '127.0.0.1');
  cleanups.push(() => admin.close());
  const app = patched.spec.containers[0]!;
  const url = (field: 'livenessProbe' | 'readinessProbe' | 'startupProbe') => {
    const get = (app[field] as { httpGet: { path: string; port: number; scheme: string } }).httpGet;
    // kubelet's side: the rewritten probe is plain HTTP to the admin port.
    expect(get).toMatchObject({ port: 15020, scheme: 'HTTP' });
    return `http://127.0.0.1:${addr.port}${get.path}`;
  };
  return { url, appProbes: config.appProbes, warnings: result.warnings };
}

async function probe(url: string) {
  const started = performance.now();
  const res = await fetch(url);
  return { status: res.status, body: await res.text(), ms: performance.now() - started };
}

describe('app-health: grpc probes run grpc.health.v1.Health/Check over h2c', () => {
  it('SERVING -> 200, NOT_SERVING -> 503, server stopped -> 503', async () => {
    const g = await startGrpcHealthServer();
    const s = await injectAndServe(g.port, { readinessProbe: { grpc: { port: g.port }, periodSeconds: 5 } });
    expect(s.appProbes).toEqual({ 'app/readiness': { kind: 'grpc', port: g.port } });

    const serving = await probe(s.url('readinessProbe'));
    expect(serving).toMatchObject({ status: 200, body: 'app probe app/readiness: SERVING\n' });
    expect(g.asked).toEqual(['']);

    g.statuses.set('', 'NOT_SERVING');
    expect(await probe(s.url('readinessProbe'))).toMatchObject({ status: 503, body: 'app probe app/readiness: NOT_SERVING\n' });

    g.statuses.set('', 'UNKNOWN');
    expect(await probe(s.url('readinessProbe'))).toMatchObject({ status: 503, body: 'app probe app/readiness: UNKNOWN\n' });

    await g.stop();
    const dead = await probe(s.url('readinessProbe'));
    expect(dead.status).toBe(503);
    expect(dead.body).toMatch(/^app probe app\/readiness: gRPC health check failed: .*ECONNREFUSED/);
  });

  it("sends the probe's service, and an error grpc-status (unknown service) is 503 with the status", async () => {
    const g = await startGrpcHealthServer();
    g.statuses.set('orders', 'SERVING');
    const s = await injectAndServe(g.port, { livenessProbe: { grpc: { port: g.port, service: 'orders' } }, startupProbe: { grpc: { port: g.port, service: 'billing' } } });
    expect(await probe(s.url('livenessProbe'))).toMatchObject({ status: 200 });
    const unknown = await probe(s.url('startupProbe'));
    expect(unknown).toMatchObject({ status: 503, body: 'app probe app/startup: gRPC health check: grpc-status 5 (unknown service billing)\n' });
    expect(g.asked).toEqual(['orders', 'billing']);
  });

  it("a server that never answers is 503 before kubelet's timeout (timeoutSeconds 1)", async () => {
    const g = await startGrpcHealthServer();
    g.setHang(true);
    const s = await injectAndServe(g.port, { livenessProbe: { grpc: { port: g.port } } });
    const r = await probe(s.url('livenessProbe'));
    expect(r.status).toBe(503);
    expect(r.body).toContain('timeout');
    expect(r.ms).toBeGreaterThan(700);
    expect(r.ms).toBeLessThan(1000);
  });

  it('a plain HTTP/1.1 server on the port is not SERVING', async () => {
    const h = await startHttpApp((_, res) => res.end('ok'));
    const s = await injectAndServe(h.port, { livenessProbe: { grpc: { port: h.port } } });
    expect((await probe(s.url('livenessProbe'))).status).toBe(503);
  });
});

describe('app-health: tcp probes connect to the app', () => {
  it('up -> 200 (the app accepted a connection), closed -> 503', async () => {
    const t = await startTcpApp();
    // Undeclared: the container declares another port; the probe moves anyway.
    const s = await injectAndServe(t.port + 1 === 65536 ? 1000 : t.port + 1, { livenessProbe: { tcpSocket: { port: t.port }, periodSeconds: 3 } });
    expect(s.appProbes).toEqual({ 'app/liveness': { kind: 'tcp', port: t.port } });
    const up = await probe(s.url('livenessProbe'));
    expect(up).toMatchObject({ status: 200, body: `app probe app/liveness: connected to port ${t.port}\n` });
    await t.close();
    const down = await probe(s.url('livenessProbe'));
    expect(down.status).toBe(503);
    expect(down.body).toMatch(/ECONNREFUSED/);
  });
});

describe('app-health: http probes on undeclared ports', () => {
  it("reaches the app on a port the container does not declare (ingress-nginx's 10254 case) and passes its status", async () => {
    let healthy = true;
    const h = await startHttpApp((url, res) => {
      res.writeHead(url === '/healthz' && healthy ? 200 : 500);
      res.end();
    });
    const s = await injectAndServe(h.port === 9999 ? 9998 : 9999, { livenessProbe: { httpGet: { path: '/healthz', port: h.port }, timeoutSeconds: 2, failureThreshold: 5 } });
    expect(s.appProbes).toEqual({ 'app/liveness': { port: h.port, path: '/healthz', scheme: 'HTTP', timeoutSeconds: 2 } });
    expect(await probe(s.url('livenessProbe'))).toMatchObject({ status: 200 });
    healthy = false;
    expect(await probe(s.url('livenessProbe'))).toMatchObject({ status: 500 });
  });

  it("a hanging app is answered 503 before kubelet's own timeout", async () => {
    const h = await startHttpApp(() => {
      /* never answers */
    });
    const s = await injectAndServe(h.port === 9999 ? 9998 : 9999, { livenessProbe: { httpGet: { path: '/', port: h.port } } });
    const r = await probe(s.url('livenessProbe'));
    expect(r.status).toBe(503);
    expect(r.ms).toBeLessThan(1000);
  });
});

describe('the hand-written gRPC health messages', () => {
  it('encode HealthCheckRequest as grpc-js would decode it, and decode what grpc-js encodes', () => {
    const pkg = protoLoader.loadSync(HEALTH_PROTO, { keepCase: true, enums: String, defaults: true });
    const methods = (grpc.loadPackageDefinition(pkg) as any).grpc.health.v1.Health.service.Check;
    const frame = encodeHealthCheckRequest('orders.v1.Orders');
    expect(frame.readUInt32BE(1)).toBe(frame.length - 5);
    expect(methods.requestDeserialize(frame.subarray(5))).toEqual({ service: 'orders.v1.Orders' });
    expect(encodeHealthCheckRequest('')).toEqual(Buffer.from([0, 0, 0, 0, 0]));
    for (const [name, value] of Object.entries(STATUS)) {
      const message: Buffer = methods.responseSerialize({ status: name });
      const framed = Buffer.concat([Buffer.from([0, 0, 0, 0, message.length]), message]);
      expect(decodeHealthCheckResponse(framed)).toBe(value);
    }
    // Unknown fields are skipped; a truncated message is not a status.
    expect(decodeHealthCheckResponse(Buffer.from([0, 0, 0, 0, 6, 0x12, 0x02, 0x61, 0x62, 0x08, 0x01]))).toBe(1);
    expect(typeof decodeHealthCheckResponse(Buffer.from([0, 0, 0, 0, 2, 0x08]))).toBe('string');
  });
});
