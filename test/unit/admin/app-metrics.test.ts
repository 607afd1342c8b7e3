import { describe, expect, it } from 'vitest';
import { familyNames, mergeExpositions, parseAppMetricsTarget, scrapeTimeoutMs, withoutFamilies } from '../../../src/data-plane/admin/app-metrics.ts';

const SIDECAR = `# HELP meshlet_requests_total Requests.
# TYPE meshlet_requests_total counter
meshlet_requests_total{direction="inbound"} 3

# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 1.5

# HELP http_latency_seconds Latency.
# TYPE http_latency_seconds histogram
http_latency_seconds_bucket{le="0.1"} 1
http_latency_seconds_bucket{le="+Inf"} 2
http_latency_seconds_sum 0.3
http_latency_seconds_count 2
`;

const APP = `# HELP process_cpu_seconds_total The app's CPU.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 9
# HELP orders_placed_total Orders.
# TYPE orders_placed_total counter
orders_placed_total 42
http_latency_seconds_count 7
`;

describe('MESHLET_APP_METRICS', () => {
  it('reads PORT/PATH', () => {
    expect(parseAppMetricsTarget('9102/metrics')).toEqual({ port: 9102, path: '/metrics' });
    expect(parseAppMetricsTarget('8080/stats/prometheus?x=1')).toEqual({ port: 8080, path: '/stats/prometheus?x=1' });
  });
  it.each(['metrics', '9102', '0/metrics', '70000/metrics', '9102 /metrics', ''])('refuses %j with a reason', (raw) => {
    expect(() => parseAppMetricsTarget(raw)).toThrow(/PORT\/PATH|outside 1-65535/);
  });
});

describe('scrape timeout', () => {
  it('uses 90 % of what Prometheus announces, bounded', () => {
    expect(scrapeTimeoutMs('10')).toBe(9000);
    expect(scrapeTimeoutMs('0.05')).toBe(100);
    expect(scrapeTimeoutMs('120')).toBe(30_000);
    expect(scrapeTimeoutMs(undefined)).toBe(5000);
    expect(scrapeTimeoutMs('soon')).toBe(5000);
  });
});

describe('merging', () => {
  it('knows the families an exposition declares or samples', () => {
    expect(familyNames(APP)).toEqual(new Set(['process_cpu_seconds_total', 'orders_placed_total', 'http_latency_seconds_count']));
  });

  it('leaves out the sidecar families the app exposes (HELP, TYPE and every sample), keeps the rest', () => {
    const own = withoutFamilies(SIDECAR, familyNames(APP));
    expect(own).toContain('meshlet_requests_total{direction="inbound"} 3');
    expect(own).not.toContain('process_cpu_seconds_total');
    // The app's http_latency_seconds_count names the sidecar's histogram: the whole family goes.
    expect(own).not.toContain('http_latency_seconds');
  });

  it('puts the app first, then the sidecar; one HELP and TYPE per name', () => {
    const merged = mergeExpositions({ ok: true, text: APP }, SIDECAR);
    expect(merged.startsWith(APP)).toBe(true);
    expect(merged).toContain('meshlet_requests_total{direction="inbound"} 3');
    const types = merged.split('\n').filter((l) => l.startsWith('# TYPE ')).map((l) => l.split(' ')[2]);
    expect(new Set(types).size).toBe(types.length);
  });

  it('serves the sidecar alone when the app could not be read', () => {
    expect(mergeExpositions({ ok: false, reason: 'refused', detail: 'ECONNREFUSED' }, SIDECAR)).toBe(SIDECAR);
  });
});
