import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { collectDefaultMetrics, Counter, Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseExposition } from '../../../src/cli/scrape/parse-exposition.ts';
import { startTwoSidecars, type TwoSidecars } from './two-sidecars.ts';

/**
 * Issue 14 item 6: an app that exposes its own Prometheus metrics (prom-client with its default
 * process and nodejs families, as most Node apps do) is scraped through the real sidecar's
 * /metrics/merged, as a Prometheus outside the mesh would after the injector rewrote the pod's
 * annotations. The merged answer passes the real `promtool check metrics` when it is built
 * (test/support/build-promtool.sh; skipped with the reason otherwise).
 */
const version = /^PROMTOOL_VERSION=(\S+)$/m.exec(readFileSync(new URL('../../support/build-promtool.sh', import.meta.url), 'utf8'))![1]!;
const promtool = process.env.MESHLET_PROMTOOL ?? join(process.env.MESHLET_CLUSTER_CACHE ?? join(homedir(), '.cache', 'meshlet-cluster'), 'bin', `promtool-${version}`);

let app: Server;
let appPort: number;
let two: TwoSidecars;
const appRegistry = new Registry();
collectDefaultMetrics({ register: appRegistry });
new Counter({ name: 'orders_placed_total', help: 'Orders placed.', registers: [appRegistry] }).inc(42);

beforeAll(async () => {
  app = createServer((req, res) => {
    if (req.url !== '/stats') return void res.writeHead(404).end();
    void appRegistry.metrics().then((text) => res.writeHead(200, { 'content-type': appRegistry.contentType }).end(text));
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  appPort = (app.address() as AddressInfo).port;
  two = await startTwoSidecars({ ordersEnv: { MESHLET_APP_METRICS: `${appPort}/stats` } });
});
afterAll(async () => {
  await two?.stop();
  app?.close();
});

const merged = async () => {
  const res = await fetch(`http://127.0.0.1:${two.mesh.ports.ordersAdmin}/metrics/merged`, { headers: { 'x-prometheus-scrape-timeout-seconds': '2' } });
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
};

describe('/metrics/merged on a real sidecar', () => {
  it("serves the app's families, then the sidecar's, each name described once", async () => {
    const r = await merged();
    expect(r.status).toBe(200);
    expect(r.type).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(r.text).toContain('orders_placed_total 42');
    expect(r.text).toContain('meshlet_requests_total');
    expect(r.text).toContain(`meshlet_app_metrics_up{target="${appPort}/stats"} 1`);
    const types = r.text.split('\n').filter((l) => l.startsWith('# TYPE ')).map((l) => l.split(' ')[2]);
    expect(types.filter((t) => t === 'process_cpu_user_seconds_total')).toHaveLength(1);
    expect(new Set(types).size).toBe(types.length);
    // And it parses as one exposition.
    expect(parseExposition(r.text).samples.length).toBeGreaterThan(10);
  });

  it.skipIf(!existsSync(promtool))('promtool: the merged answer parses, and lints exactly as the app alone does', async () => {
    const text = (await merged()).text;
    const parsed = spawnSync(promtool, ['check', 'metrics', '--extended', '--lint=none'], { input: text, encoding: 'utf8' });
    expect({ status: parsed.status, stderr: parsed.stderr }).toEqual({ status: 0, stderr: '' });
    // prom-client's own nodejs_active_*_total gauges are the app's business; the merge adds no finding.
    const appAlone = spawnSync(promtool, ['check', 'metrics'], { input: await appRegistry.metrics(), encoding: 'utf8' });
    const mergedLint = spawnSync(promtool, ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(mergedLint.stderr).toBe(appAlone.stderr);
  });

  it("/metrics stays the sidecar's own", async () => {
    const text = await (await fetch(`http://127.0.0.1:${two.mesh.ports.ordersAdmin}/metrics`)).text();
    expect(text).not.toContain('orders_placed_total');
  });

  it('the app down: still 200, the sidecar alone with up 0, the failure counted', async () => {
    await new Promise((r) => app.close(r));
    const r = await merged();
    expect(r.status).toBe(200);
    expect(r.text).not.toContain('orders_placed_total');
    expect(r.text).toContain(`meshlet_app_metrics_up{target="${appPort}/stats"} 0`);
    expect(r.text).toMatch(/meshlet_app_metrics_failures_total\{reason="refused"\} 1\b/);
  });

  it('a sidecar without MESHLET_APP_METRICS answers 404 on /metrics/merged and exports no app-metrics series', async () => {
    expect((await fetch(`http://127.0.0.1:${two.mesh.ports.frontendAdmin}/metrics/merged`)).status).toBe(404);
    const text = await (await fetch(`http://127.0.0.1:${two.mesh.ports.frontendAdmin}/metrics`)).text();
    expect(text).not.toMatch(/^meshlet_app_metrics_(up|failures_total)\{/m);
  });
});
