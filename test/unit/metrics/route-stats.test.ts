import { describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { renderMetrics } from '../../../src/data-plane/metrics/exposition.ts';
import { parseExposition, type Exposition } from '../../../src/cli/scrape/parse-exposition.ts';
import { RequestMetrics } from '../../../src/data-plane/metrics/request-metrics.ts';
import { histogramQuantile, routeStats } from '../../../src/cli/scrape/route-stats.ts';

const P = 'spiffe://cluster.local/ns/web/sa/frontend';
const snap = async (r: Registry): Promise<Exposition> => parseExposition(await renderMetrics(r, 'text'));

describe('histogramQuantile (Prometheus histogram_quantile)', () => {
  it('interpolates linearly inside the bucket holding the rank', () => {
    const b = new Map([[0.1, 5], [0.2, 10], [Infinity, 10]]);
    expect(histogramQuantile(0.5, b)).toBeCloseTo(0.1, 12);
    expect(histogramQuantile(0.75, b)).toBeCloseTo(0.15, 12);
    expect(histogramQuantile(0.25, b)).toBeCloseTo(0.05, 12);
  });

  it('answers the highest finite bound for the +Inf bucket and null with no observations', () => {
    expect(histogramQuantile(0.99, new Map([[1, 1], [Infinity, 100]]))).toBe(1);
    expect(histogramQuantile(0.5, new Map([[1, 0], [Infinity, 0]]))).toBeNull();
  });
});

describe('routeStats between two scrapes', () => {
  it('computes per-route counts, rates, errors, denials and percentiles from deltas only', async () => {
    const registry = new Registry();
    const m = new RequestMetrics(registry);
    // Before the first scrape: must not count.
    for (let i = 0; i < 7; i++) m.record('inbound', P, 'list-orders', 'GET', 200, null, 'allow', 5, 0, 0);
    const first = await snap(registry);
    for (let i = 0; i < 8; i++) m.record('inbound', P, 'list-orders', 'GET', 200, null, 'allow', 0.0002, 0, 0);
    m.record('inbound', P, 'list-orders', 'GET', 502, null, 'allow', 0.0002, 0, 0);
    m.record('inbound', null, null, 'GET', 403, null, 'deny', 0.00005, 0, 0);
    m.record('outbound', P, undefined, 'POST', 200, 14, 'none', 0.003, 0, 0);
    const second = await snap(registry);
    const rows = routeStats(first, second, 2);
    expect(rows.map((r) => [r.direction, r.route, r.requests, r.requestsPerSecond, r.errors, r.denied])).toEqual([
      ['inbound', 'list-orders', 9, 4.5, 1, 0],
      ['inbound', 'unmatched', 1, 0.5, 0, 1],
      ['outbound', 'none', 1, 0.5, 1, 0],
    ]);
    const orders = rows[0]!;
    expect(orders.errorRate).toBeCloseTo(1 / 9, 12);
    // 9 observations in (100 µs, 250 µs]: p50 rank 4.5 -> 100 + 150 * 4.5/9 µs.
    expect(orders.p50).toBeCloseTo(0.000175, 12);
    expect(orders.p99).toBeCloseTo(0.0001 + 0.00015 * (8.91 / 9), 12);
    // One observation in the first bucket (0, 100 µs]: p50 rank 0.5 -> 50 µs.
    expect(rows[1]!.p50).toBeCloseTo(0.00005, 12);
  });

  it('treats a counter that went down as a restart (the new value is the increase)', async () => {
    const a = new Registry();
    const ma = new RequestMetrics(a);
    for (let i = 0; i < 10; i++) ma.record('inbound', P, 'r', 'GET', 200, null, 'allow', 0.001, 0, 0);
    const b = new Registry();
    const mb = new RequestMetrics(b);
    for (let i = 0; i < 3; i++) mb.record('inbound', P, 'r', 'GET', 200, null, 'allow', 0.001, 0, 0);
    const rows = routeStats(await snap(a), await snap(b), 1);
    expect(rows.map((r) => r.requests)).toEqual([3]);
  });
});
