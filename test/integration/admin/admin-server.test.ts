import { afterEach, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { AdminServer } from '../../../src/data-plane/admin/admin-server.ts';
import { OPENMETRICS_TEXT, PROMETHEUS_TEXT } from '../../../src/data-plane/metrics/exposition.ts';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function registryWithSamples(): Registry {
  const registry = new Registry();
  const requests = new Counter({ name: 'meshlet_test_requests_total', help: 'Requests.', labelNames: ['route'], registers: [registry] });
  requests.inc({ route: 'get-orders' }, 3);
  const latency = new Histogram({ name: 'meshlet_test_latency_seconds', help: 'Latency.', buckets: [0.001, 0.01], registers: [registry] });
  latency.observe(0.0005);
  latency.observe(0.005);
  const info = new Gauge({ name: 'meshlet_test_policy_info', help: 'Policy "info".', labelNames: ['hash'], registers: [registry] });
  info.set({ hash: 'ab\\"c' }, 1);
  return registry;
}

async function start(opts: Partial<ConstructorParameters<typeof AdminServer>[0]> = {}) {
  let ready = false;
  const admin = new AdminServer({
    readiness: () => ({ ready, checks: { svid: { ok: ready, detail: ready ? undefined : 'no SVID yet' } } }),
    registry: registryWithSamples(),
    connections: () => [{ id: 1, direction: 'inbound' }],
    ...opts,
  });
  const addr = await admin.listen(0, '127.0.0.1');
  cleanups.push(() => admin.close());
  return { base: `http://127.0.0.1:${addr.port}`, setReady: (r: boolean) => (ready = r) };
}

describe('admin server', () => {
  it('/live is 200; /ready is 503 with the failing check until ready, then 200', async () => {
    const a = await start();
    expect((await fetch(`${a.base}/live`)).status).toBe(200);
    const notReady = await fetch(`${a.base}/ready`);
    expect(notReady.status).toBe(503);
    expect(await notReady.json()).toEqual({ ready: false, checks: { svid: { ok: false, detail: 'no SVID yet' } } });
    a.setReady(true);
    expect((await fetch(`${a.base}/ready`)).status).toBe(200);
  });

  it('/metrics serves Prometheus text 0.0.4 by default', async () => {
    const a = await start();
    const res = await fetch(`${a.base}/metrics`);
    expect(res.headers.get('content-type')).toBe(PROMETHEUS_TEXT);
    const body = await res.text();
    expect(body).toContain('# TYPE meshlet_test_requests_total counter');
    expect(body).toContain('meshlet_test_requests_total{route="get-orders"} 3');
    expect(body).toContain('meshlet_test_latency_seconds_bucket{le="0.001"} 1');
    expect(body).toContain('meshlet_test_latency_seconds_bucket{le="+Inf"} 2');
    expect(body).toContain('meshlet_test_latency_seconds_count 2');
    expect(body).toContain('meshlet_test_policy_info{hash="ab\\\\\\"c"} 1');
    expect(body).not.toContain('# EOF');
  });

  it('/metrics serves OpenMetrics when asked, and the text format stays intact afterwards', async () => {
    const a = await start();
    const res = await fetch(`${a.base}/metrics`, { headers: { accept: 'application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5' } });
    expect(res.headers.get('content-type')).toBe(OPENMETRICS_TEXT);
    const body = await res.text();
    expect(body).toContain('# TYPE meshlet_test_requests counter');
    expect(body).toContain('meshlet_test_requests_total{route="get-orders"} 3');
    expect(body).toContain('# TYPE meshlet_test_policy info');
    expect(body.endsWith('# EOF\n')).toBe(true);
    const again = await (await fetch(`${a.base}/metrics`)).text();
    expect(again).toContain('# TYPE meshlet_test_requests_total counter');
  });

  it('/connections lists what the registry gives', async () => {
    const a = await start();
    expect(await (await fetch(`${a.base}/connections`)).json()).toEqual({ connections: [{ id: 1, direction: 'inbound' }] });
  });

  it('/app-health forwards to the app probe and passes its status through', async () => {
    let seenPath = '';
    const app: Server = createServer((req, res) => {
      seenPath = req.url ?? '';
      res.writeHead(req.url === '/healthz' ? 204 : 500);
      res.end();
    });
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => app.close(() => r())));
    const appPort = (app.address() as AddressInfo).port;
    const a = await start({
      appProbes: { 'web/liveness': { port: appPort, path: '/healthz', scheme: 'HTTP' }, 'web/readiness': { port: appPort, path: '/broken', scheme: 'HTTP' } },
    });
    expect((await fetch(`${a.base}/app-health/web/liveness`)).status).toBe(204);
    expect(seenPath).toBe('/healthz');
    expect((await fetch(`${a.base}/app-health/web/readiness`)).status).toBe(500);
    expect((await fetch(`${a.base}/app-health/web/startup`)).status).toBe(404);
  });

  it('/app-health answers 503 when the app is down', async () => {
    const a = await start({ appProbes: { 'web/liveness': { port: 1, path: '/', scheme: 'HTTP' } } });
    expect((await fetch(`${a.base}/app-health/web/liveness`)).status).toBe(503);
  });

  it('POST /shutdown from loopback triggers the shutdown hook', async () => {
    let stopped = 0;
    const a = await start({ onShutdown: () => stopped++ });
    expect((await fetch(`${a.base}/shutdown`)).status).toBe(405);
    expect((await fetch(`${a.base}/shutdown`, { method: 'POST' })).status).toBe(202);
    expect(stopped).toBe(1);
  });
});
