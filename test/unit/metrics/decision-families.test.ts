import { afterEach, describe, expect, it } from 'vitest';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createConnection, type AddressInfo } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { Registry } from 'prom-client';
import { AuthzMetrics } from '../../../src/data-plane/metrics/authz-metrics.ts';
import { RefusalMetrics, REFUSAL_CODES, UNDECLARED_PORT_REFUSAL } from '../../../src/data-plane/metrics/refusal-metrics.ts';
import { HANDSHAKE_FAILURE_REASONS, TlsMetrics } from '../../../src/data-plane/metrics/tls-metrics.ts';
import { named, scrape, valueOf } from './scrape.ts';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const FRONTEND = 'spiffe://cluster.local/ns/web/sa/frontend';
const fixture = (f: string) => readFileSync(new URL(`../../fixtures/generated/${f}`, import.meta.url), 'utf8');

describe('authz decisions', () => {
  it('counts allow, deny and audit_would_deny by route and caller; a default is "unmatched"', async () => {
    const registry = new Registry();
    const m = new AuthzMetrics(registry);
    m.decided(FRONTEND, 'list-orders', 'allow');
    m.decided(FRONTEND, 'list-orders', 'allow');
    m.decided(FRONTEND, 'list-orders', 'deny');
    m.decided(null, null, 'deny');
    m.decided(FRONTEND, 'admin', 'audit_would_deny');
    const samples = await scrape(registry);
    const v = (route: string, caller: string, result: string) => valueOf(samples, 'meshlet_authz_decisions_total', { route, caller, result });
    expect(v('list-orders', FRONTEND, 'allow')).toBe(2);
    expect(v('list-orders', FRONTEND, 'deny')).toBe(1);
    expect(v('list-orders', FRONTEND, 'audit_would_deny')).toBe(0);
    expect(v('unmatched', 'unauthenticated', 'deny')).toBe(1);
    expect(v('admin', FRONTEND, 'audit_would_deny')).toBe(1);
    // Each (route, caller) pair carries its three results: 3 pairs -> 9 series.
    expect(named(samples, 'meshlet_authz_decisions_total')).toHaveLength(9);
  });

  it('caps distinct callers', async () => {
    const registry = new Registry();
    const m = new AuthzMetrics(registry, { callerCap: 2 });
    for (let i = 0; i < 100; i++) m.decided(`spiffe://cluster.local/ns/n${i}/sa/s`, 'r', 'deny');
    const samples = await scrape(registry);
    expect(valueOf(samples, 'meshlet_authz_decisions_total', { route: 'r', caller: 'other', result: 'deny' })).toBe(98);
    expect(new Set(named(samples, 'meshlet_authz_decisions_total').map((s) => s.labels.caller)).size).toBe(3);
  });
});

describe('TLS handshake failures', () => {
  it('starts every (direction, reason) at 0', async () => {
    const registry = new Registry();
    new TlsMetrics(registry);
    const samples = named(await scrape(registry), 'meshlet_tls_handshake_failures_total');
    expect(samples).toHaveLength(2 * HANDSHAKE_FAILURE_REASONS.length);
    expect(samples.every((s) => s.value === 0)).toBe(true);
  });

  it('classifies a real plaintext request on a TLS listener as plaintext_on_strict', async () => {
    const registry = new Registry();
    const m = new TlsMetrics(registry);
    const server = createTlsServer({ cert: fixture('good-leaf.pem'), key: fixture('good-leaf.key') });
    const failed = once(server, 'tlsClientError');
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const plain = createConnection((server.address() as AddressInfo).port, '127.0.0.1', () => plain.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n'));
    plain.on('error', () => {});
    cleanups.push(() => void plain.destroy());
    const [err] = await failed;
    expect(m.handshakeFailed('inbound', err)).toBe('plaintext_on_strict');
    const samples = await scrape(registry);
    expect(valueOf(samples, 'meshlet_tls_handshake_failures_total', { direction: 'inbound', reason: 'plaintext_on_strict' })).toBe(1);
    expect(valueOf(samples, 'meshlet_tls_handshake_failures_total', { direction: 'outbound', reason: 'plaintext_on_strict' })).toBe(0);
  });

  it('an unclassifiable error is "other"', async () => {
    const registry = new Registry();
    const m = new TlsMetrics(registry);
    expect(m.handshakeFailed('outbound', new Error('boom'))).toBe('other');
    expect(valueOf(await scrape(registry), 'meshlet_tls_handshake_failures_total', { direction: 'outbound', reason: 'other' })).toBe(1);
  });
});

describe('proxy refusals', () => {
  it('counts catalog codes and undeclared ports; unknown codes fold into "other"', async () => {
    const registry = new Registry();
    const m = new RefusalMetrics(registry);
    m.refused('inbound', 'MESHLET_BAD_REQUEST');
    m.refused('inbound', 'MESHLET_BAD_REQUEST');
    m.refused('inbound', UNDECLARED_PORT_REFUSAL);
    m.refused('outbound', 'SOMETHING_NEW');
    const samples = await scrape(registry);
    expect(valueOf(samples, 'meshlet_proxy_refusals_total', { direction: 'inbound', code: 'MESHLET_BAD_REQUEST' })).toBe(2);
    expect(valueOf(samples, 'meshlet_proxy_refusals_total', { direction: 'inbound', code: 'MESHLET_UNDECLARED_PORT' })).toBe(1);
    expect(valueOf(samples, 'meshlet_proxy_refusals_total', { direction: 'outbound', code: 'other' })).toBe(1);
    expect(valueOf(samples, 'meshlet_proxy_refusals_total', { direction: 'outbound', code: 'MESHLET_DENIED' })).toBe(0);
    expect(named(samples, 'meshlet_proxy_refusals_total')).toHaveLength(2 * REFUSAL_CODES.length + 1);
  });
});
