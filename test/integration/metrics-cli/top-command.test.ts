import { afterEach, describe, expect, it } from 'vitest';
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Gauge } from 'prom-client';
import { AdminServer } from '../../../src/data-plane/admin/admin-server.ts';
import { SidecarMetrics } from '../../../src/data-plane/metrics/sidecar-metrics.ts';
import { cells, meshlet } from './support.ts';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const FRONTEND = 'spiffe://cluster.local/ns/web/sa/frontend';

/**
 * A real admin server over a real sidecar metrics registry. `between` runs exactly once, in
 * the middle of the FIRST scrape, after the request families were read: what it records is
 * what the second scrape of `meshlet top --once` sees as the delta.
 */
async function sidecarAdmin(before: (m: SidecarMetrics) => void, between: (m: SidecarMetrics) => void): Promise<string> {
  const metrics = new SidecarMetrics();
  before(metrics);
  let scrapes = 0;
  new Gauge({
    name: 'meshlet_test_scrapes',
    help: 'Registered last: collected after every meshlet_* family of the same scrape.',
    registers: [metrics.registry],
    collect() {
      if (scrapes++ === 0) between(metrics);
    },
  });
  const admin = new AdminServer({ readiness: () => ({ ready: true, checks: {} }), registry: metrics.registry, connections: () => [] });
  const { port } = await admin.listen(0, '127.0.0.1');
  cleanups.push(() => admin.close());
  return `http://127.0.0.1:${port}`;
}

function traffic(m: SidecarMetrics): void {
  const r = m.requests;
  // list-orders: 18 fast successes, 2 slow 503s -> 10 % errors.
  for (let i = 0; i < 18; i++) r.record('inbound', FRONTEND, 'list-orders', 'GET', 200, null, 'allow', 0.0002, 0, 64);
  for (let i = 0; i < 2; i++) r.record('inbound', FRONTEND, 'list-orders', 'GET', 503, null, 'allow', 0.02, 0, 10);
  // Denied by default: 4 requests.
  for (let i = 0; i < 4; i++) r.record('inbound', null, null, 'POST', 403, null, 'deny', 0.00005, 12, 80);
  // Outbound gRPC: 5 calls, one PERMISSION_DENIED.
  for (let i = 0; i < 4; i++) r.record('outbound', 'spiffe://cluster.local/ns/shop/sa/orders', undefined, 'POST', 200, 0, 'none', 0.003, 5, 5);
  r.record('outbound', 'spiffe://cluster.local/ns/shop/sa/orders', undefined, 'POST', 200, 7, 'none', 0.0007, 5, 5);
}

describe('meshlet top --once', () => {
  it('reports per-route deltas between two real scrapes, as JSON', async () => {
    const base = await sidecarAdmin(
      (m) => m.requests.record('inbound', FRONTEND, 'list-orders', 'GET', 200, null, 'allow', 9, 0, 0), // before: never counted
      traffic,
    );
    const r = await meshlet('top', '--admin', base, '--once', '--interval', '100ms', '--output', 'json');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const doc = JSON.parse(r.stdout) as { elapsedSeconds: number; routes: Record<string, unknown>[] };
    expect(doc.elapsedSeconds).toBeGreaterThan(0);
    expect(doc.routes.map((x) => [x.direction, x.route, x.requests, x.errors, x.denied])).toEqual([
      ['inbound', 'list-orders', 20, 2, 0],
      ['outbound', 'none', 5, 1, 0],
      ['inbound', 'unmatched', 4, 0, 4],
    ]);
    for (const row of doc.routes) expect(row.requestsPerSecond).toBe((row.requests as number) / doc.elapsedSeconds);
    const [orders, outbound, denied] = doc.routes;
    expect(orders!.errorRate).toBe(0.1);
    // 18 of 20 in (100 µs, 250 µs], 2 in (10 ms, 25 ms]: p50 = 100 + 150 * 10/18 µs; p99 rank 19.8 is in the 25 ms bucket.
    expect(orders!.p50).toBeCloseTo(0.0001 + 0.00015 * (10 / 18), 12);
    expect(orders!.p99).toBeCloseTo(0.01 + 0.015 * (1.8 / 2), 12);
    expect(outbound!.errorRate).toBe(0.2);
    expect(denied!.p50).toBeCloseTo(0.00005, 12);
  });

  it('prints an aligned table', async () => {
    const base = await sidecarAdmin(() => {}, traffic);
    const r = await meshlet('top', '--admin', base, '--once', '--interval', '100ms');
    expect(r.status).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^meshlet top — 3 routes over the last \d+\.\ds$/);
    expect(lines[1]).toBe('');
    expect(cells(lines[2]!)).toEqual(['DIRECTION', 'ROUTE', 'REQS', 'RPS', 'ERRORS', 'DENIED', 'P50', 'P95', 'P99']);
    const row = (i: number) => {
      const c = cells(lines[i]!);
      expect(c[3]).toMatch(/^\d+\.\d$/);
      return [...c.slice(0, 3), ...c.slice(4)];
    };
    expect(row(3)).toEqual(['inbound', 'list-orders', '20', '10.0%', '0', '183µs', '17.5ms', '23.5ms']);
    // 1 call in (0.5 ms, 1 ms], 4 in (2.5 ms, 5 ms]: p50 rank 2.5 -> 2.5 + 2.5 * 1.5/4 ms.
    expect(row(4)).toEqual(['outbound', 'none', '5', '20.0%', '0', '3.44ms', '4.84ms', '4.97ms']);
    expect(row(5)).toEqual(['inbound', 'unmatched', '4', '0.0%', '4', '50µs', '95µs', '99µs']);
    // Right-aligned numbers: every REQS cell ends where the header's REQS ends.
    const end = lines[2]!.indexOf('REQS') + 4;
    for (const i of [3, 4, 5]) expect(lines[i]!.slice(end - 2, end).trim()).toMatch(/^\d+$/);
  });

  it('says so when nothing happened between the scrapes', async () => {
    const base = await sidecarAdmin(() => {}, () => {});
    const r = await meshlet('top', '--admin', base, '--once', '--interval', '50ms');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^meshlet top — 0 routes over the last \d+\.\ds\n\nno requests between the two scrapes\n$/);
  });

  it('fails with ADMIN_BAD_RESPONSE when the port does not serve meshlet metrics', async () => {
    const cases = [
      ['<html>nope</html>', 'not Prometheus text (line 1: expected a metric name, got "<html>nope</html>")'],
      ['# TYPE other_total counter\nother_total 1\n', 'no meshlet_requests_total metric (is this a meshlet sidecar?)'],
    ];
    for (const [body, problem] of cases) {
      const server = createHttpServer((_req, res) => res.end(body));
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
      const port = (server.address() as AddressInfo).port;
      const r = await meshlet('top', '--admin', `http://127.0.0.1:${port}`, '--once', '--interval', '10ms');
      expect(r.status).toBe(1);
      expect(r.stderr).toBe(`meshlet top: ADMIN_BAD_RESPONSE: http://127.0.0.1:${port}/metrics did not answer like a meshlet admin port: ${problem}\n`);
    }
  });

  it('refuses a bad --interval with exit 2 and the duration error', async () => {
    const r = await meshlet('top', '--admin', 'http://127.0.0.1:1', '--interval', '2');
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--interval "2" has no unit; write e.g. 2s or 2h');
  });

  it('fails with ADMIN_UNREACHABLE (exit 1) on a closed port, even without --once', async () => {
    const server = createHttpServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    await new Promise<void>((r) => server.close(() => r()));
    const r = await meshlet('top', '--admin', `http://127.0.0.1:${port}`);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('ADMIN_UNREACHABLE');
  });
});
