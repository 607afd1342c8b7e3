import { describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { RequestMetrics, REQUEST_DURATION_BUCKETS } from '../../../src/data-plane/metrics/request-metrics.ts';
import { named, scrape, valueOf } from './scrape.ts';

const FRONTEND = 'spiffe://cluster.local/ns/web/sa/frontend';
const base = { direction: 'inbound', peer: FRONTEND, route: 'list-orders', method: 'GET', status_class: '2xx', grpc_status: 'none', authz: 'allow' };

describe('request metrics', () => {
  it('counts requests, bytes and latency buckets per label set, exactly', async () => {
    const registry = new Registry();
    const m = new RequestMetrics(registry);
    const s = m.series('inbound', FRONTEND, 'list-orders', 'GET', 200, null, 'allow');
    m.observe(s, 0.00008, 10, 100); // first bucket (<= 100 µs)
    m.observe(s, 0.0003, 20, 200); // (250 µs, 500 µs]
    m.observe(s, 0.0003, 0, 300);
    m.observe(s, 42, 0, 0); // past 10 s: only +Inf
    m.record('inbound', FRONTEND, 'list-orders', 'GET', 503, null, 'allow', 0.002, 1, 2);
    const samples = await scrape(registry);
    expect(valueOf(samples, 'meshlet_requests_total', base)).toBe(4);
    expect(valueOf(samples, 'meshlet_requests_total', { ...base, status_class: '5xx' })).toBe(1);
    expect(valueOf(samples, 'meshlet_request_bytes_total', base)).toBe(30);
    expect(valueOf(samples, 'meshlet_response_bytes_total', base)).toBe(600);
    const bucket = (le: string) => valueOf(samples, 'meshlet_request_duration_seconds_bucket', { ...base, le });
    expect(bucket('0.0001')).toBe(1);
    expect(bucket('0.00025')).toBe(1);
    expect(bucket('0.0005')).toBe(3);
    expect(bucket('10')).toBe(3);
    expect(bucket('+Inf')).toBe(4);
    expect(valueOf(samples, 'meshlet_request_duration_seconds_count', base)).toBe(4);
    expect(valueOf(samples, 'meshlet_request_duration_seconds_sum', base)).toBeCloseTo(42.00068, 9);
    // One bucket sample per bound plus +Inf, per series.
    expect(named(samples, 'meshlet_request_duration_seconds_bucket')).toHaveLength(2 * (REQUEST_DURATION_BUCKETS.length + 1));
  });

  it('returns the same cached series for the same labels (a steady stream creates nothing)', () => {
    const m = new RequestMetrics(new Registry());
    const a = m.series('outbound', FRONTEND, undefined, 'POST', 201, null, 'none');
    const b = m.series('outbound', FRONTEND, undefined, 'POST', 299, null, 'none');
    expect(b).toBe(a);
    expect(m.series('inbound', FRONTEND, undefined, 'POST', 201, null, 'none')).not.toBe(a);
    expect(m.requests.size).toBe(2);
  });

  it('bounds every label: methods, statuses, gRPC codes, missing peers and routes', async () => {
    const registry = new Registry();
    const m = new RequestMetrics(registry);
    m.record('inbound', null, null, 'PROPFIND', 0, null, 'deny', 0.001, 0, 0);
    m.record('outbound', undefined, undefined, 'POST', 200, 7, 'none', 0.001, 0, 0);
    m.record('outbound', undefined, undefined, 'POST', 200, 99, 'none', 0.001, 0, 0);
    const samples = await scrape(registry);
    expect(valueOf(samples, 'meshlet_requests_total', { direction: 'inbound', peer: 'unauthenticated', route: 'unmatched', method: 'other', status_class: 'none', grpc_status: 'none', authz: 'deny' })).toBe(1);
    expect(valueOf(samples, 'meshlet_requests_total', { direction: 'outbound', peer: 'unknown', route: 'none', method: 'POST', status_class: '2xx', grpc_status: '7', authz: 'none' })).toBe(1);
    expect(valueOf(samples, 'meshlet_requests_total', { direction: 'outbound', peer: 'unknown', route: 'none', method: 'POST', status_class: '2xx', grpc_status: 'none', authz: 'none' })).toBe(1);
  });

  it('caps distinct peers: past the cap every new identity is "other", earlier ones stay', async () => {
    const registry = new Registry();
    const m = new RequestMetrics(registry, { peerCap: 3 });
    for (let i = 0; i < 50; i++) m.record('inbound', `spiffe://cluster.local/ns/n${i}/sa/s`, 'r', 'GET', 200, null, 'allow', 0.001, 0, 0);
    m.record('inbound', 'spiffe://cluster.local/ns/n1/sa/s', 'r', 'GET', 200, null, 'allow', 0.001, 0, 0);
    const samples = named(await scrape(registry), 'meshlet_requests_total');
    expect(samples.map((s) => [s.labels.peer, s.value])).toEqual([
      ['spiffe://cluster.local/ns/n0/sa/s', 1],
      ['spiffe://cluster.local/ns/n1/sa/s', 2],
      ['spiffe://cluster.local/ns/n2/sa/s', 1],
      ['other', 47],
    ]);
    expect(m.peers.overflowed).toBe(47);
  });

  it('keeps cardinality bounded under 10,000 distinct peers and routes', () => {
    const m = new RequestMetrics(new Registry(), { peerCap: 100, routeCap: 20 });
    for (let i = 0; i < 10_000; i++) m.record('inbound', `spiffe://td/ns/a/sa/${i}`, `route-${i}`, 'GET', 200, null, 'allow', 0.001, 0, 0);
    // At most (100 + other) peers x (20 + other) routes series, and in fact far fewer.
    expect(m.requests.size).toBeLessThanOrEqual(101 * 21);
    expect(m.requests.size).toBe(20 + 80 + 1);
  });

  it('renders in OpenMetrics too, with counters named by family', async () => {
    const registry = new Registry();
    const m = new RequestMetrics(registry);
    m.record('inbound', FRONTEND, 'list-orders', 'GET', 200, null, 'allow', 0.001, 1, 1);
    const { renderMetrics } = await import('../../../src/data-plane/metrics/exposition.ts');
    const text = await renderMetrics(registry, 'openmetrics');
    expect(text).toContain('# TYPE meshlet_requests counter');
    expect(text).toContain('# TYPE meshlet_request_duration_seconds histogram');
    expect(text).toMatch(/^meshlet_requests_total\{direction="inbound",peer="spiffe:\/\/cluster.local\/ns\/web\/sa\/frontend",route="list-orders",method="GET",status_class="2xx",grpc_status="none",authz="allow"\} 1$/m);
    expect(text.endsWith('# EOF\n')).toBe(true);
  });

  it('registry.resetMetrics() drops the series and prom-client renders them too', async () => {
    const registry = new Registry();
    const m = new RequestMetrics(registry);
    m.record('inbound', FRONTEND, 'list-orders', 'GET', 200, null, 'allow', 0.001, 1, 1);
    expect(await registry.metrics()).toContain('meshlet_requests_total{direction="inbound"');
    registry.resetMetrics();
    expect(named(await scrape(registry), 'meshlet_requests_total')).toEqual([]);
  });
});
