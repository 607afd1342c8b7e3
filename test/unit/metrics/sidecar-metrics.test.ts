import { describe, expect, it } from 'vitest';
import { once } from 'node:events';
import { createConnection, createServer, type AddressInfo, type Socket } from 'node:net';
import { Registry } from 'prom-client';
import { SidecarMetrics } from '../../../src/data-plane/metrics/sidecar-metrics.ts';
import { ConnectionRegistry } from '../../../src/data-plane/proxy/connection-registry.ts';
import { scrape, valueOf } from './scrape.ts';

const P = 'spiffe://cluster.local/ns/web/sa/frontend';

describe('SidecarMetrics', () => {
  it('puts every family on its own registry, so two sidecars in one process never collide', async () => {
    const a = new SidecarMetrics({ processMetrics: false });
    const b = new SidecarMetrics({ processMetrics: false });
    expect(a.registry).not.toBe(b.registry);
    a.requests.record('inbound', P, 'r', 'GET', 200, null, 'allow', 0.001, 0, 0);
    expect(valueOf(await scrape(b.registry), 'meshlet_requests_total', { direction: 'inbound', peer: P, route: 'r', method: 'GET', status_class: '2xx', grpc_status: 'none', authz: 'allow' })).toBeUndefined();
  });

  it('maps a policy outcome to the authz result, counting it once', async () => {
    const m = new SidecarMetrics({ registry: new Registry(), processMetrics: false });
    expect(m.decided(P, { decision: 'allow', route: 'r' })).toBe('allow');
    expect(m.decided(P, { decision: 'allow', route: 'r', wouldDeny: true })).toBe('audit_would_deny');
    expect(m.decided(null, { decision: 'deny', route: null })).toBe('deny');
    const s = await scrape(m.registry);
    expect(valueOf(s, 'meshlet_authz_decisions_total', { route: 'r', caller: P, result: 'allow' })).toBe(1);
    expect(valueOf(s, 'meshlet_authz_decisions_total', { route: 'r', caller: P, result: 'audit_would_deny' })).toBe(1);
    expect(valueOf(s, 'meshlet_authz_decisions_total', { route: 'unmatched', caller: 'unauthenticated', result: 'deny' })).toBe(1);
  });

  it('its observer feeds the refusal and TLS families (the ProxyObserver hooks)', async () => {
    const m = new SidecarMetrics({ processMetrics: false });
    m.observer.refused('inbound', 'MESHLET_BAD_REQUEST');
    m.observer.handshakeFailed('inbound', Object.assign(new Error('x'), { code: 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA' }));
    const s = await scrape(m.registry);
    expect(valueOf(s, 'meshlet_proxy_refusals_total', { direction: 'inbound', code: 'MESHLET_BAD_REQUEST' })).toBe(1);
    expect(valueOf(s, 'meshlet_tls_handshake_failures_total', { direction: 'inbound', reason: 'unknown_ca' })).toBe(1);
  });

  it('exports process metrics unless told not to, and keeps the policy family names', async () => {
    const on = await scrape(new SidecarMetrics().registry);
    expect(on.some((x) => x.name === 'process_resident_memory_bytes' || x.name === 'nodejs_heap_size_used_bytes')).toBe(true);
    expect(on.some((x) => x.name === 'meshlet_policy_reloads_total')).toBe(true);
    const off = await scrape(new SidecarMetrics({ processMetrics: false }).registry);
    expect(off.some((x) => x.name.startsWith('process_') || x.name.startsWith('nodejs_'))).toBe(false);
  });
});

describe('SidecarMetrics.connectionOpened', () => {
  it('counts a TrackedConnection of the proxy registry by direction, verified peer and TLS version', async () => {
    const accepted: Socket[] = [];
    const server = createServer((s) => accepted.push(s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const client = createConnection((server.address() as AddressInfo).port, '127.0.0.1');
    try {
      await once(client, 'connect');
      const deadline = Date.now() + 10_000;
      while (accepted.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      const conn = new ConnectionRegistry().track('inbound', 'accepted', accepted[0]!);
      conn.peerIdentity = P;
      conn.tlsVersion = 'TLSv1.3';
      const m = new SidecarMetrics({ processMetrics: false });
      m.connectionOpened(conn);
      const s = await scrape(m.registry);
      expect(valueOf(s, 'meshlet_tcp_open_connections', { direction: 'inbound', peer: P, tls: 'TLSv1.3' })).toBe(1);
    } finally {
      client.destroy();
      for (const s of accepted) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
