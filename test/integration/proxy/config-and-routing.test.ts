import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_PROXY_SETTINGS, ProxyConfigError, resolveProxySettings } from '../../../src/data-plane/proxy/config.ts';
import { DestinationConfigError, DestinationTable, parseAuthority } from '../../../src/data-plane/proxy/outbound/destination-table.ts';
import { PROXY_ERROR_CATALOG } from '../../../src/data-plane/proxy/http/errors.ts';

describe('proxy settings', () => {
  it('fills defaults and freezes', () => {
    const s = resolveProxySettings({ timeouts: { connectMs: 1234 } });
    expect(s.timeouts.connectMs).toBe(1234);
    expect(s.timeouts.idleMs).toBe(DEFAULT_PROXY_SETTINGS.timeouts.idleMs);
    expect(Object.isFrozen(s.timeouts)).toBe(true);
  });

  it('reports every bad field at once', () => {
    let err: unknown;
    try {
      resolveProxySettings({ timeouts: { connectMs: -1, idleMs: 1.5 }, limits: { maxHeaderCount: 0, bogus: 3 } as never });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ProxyConfigError);
    expect((err as ProxyConfigError).code).toBe('MESHLET_PROXY_CONFIG_INVALID');
    expect((err as ProxyConfigError).problems).toEqual([
      'timeouts.connectMs must be a positive integer, got -1',
      'timeouts.idleMs must be a positive integer, got 1.5',
      'limits.maxHeaderCount must be a positive integer, got 0',
      'limits.bogus is not a known setting',
    ]);
  });
});

describe('destination table', () => {
  it('parses authorities', () => {
    expect(parseAuthority('Orders.Shop:8080')).toEqual({ host: 'orders.shop', port: 8080 });
    expect(parseAuthority('orders')).toEqual({ host: 'orders', port: 80 });
    expect(parseAuthority('[::1]:9000')).toEqual({ host: '::1', port: 9000 });
    for (const bad of ['', ':80', 'a:0', 'a:65536', 'a:8x', '[::1', '[::1]x']) expect(parseAuthority(bad)).toBeNull();
  });

  it('routes mesh names exactly, plaintext by rule, and refuses the rest', () => {
    const t = new DestinationTable({
      mesh: [{ host: 'orders.shop.svc', port: 80, address: { host: '10.0.0.7', port: 15006 }, expected: { spiffeId: 'spiffe://td/ns/shop/sa/orders' } }],
      plaintext: [{ hosts: ['*.googleapis.com'], ports: [80] }, { cidrs: ['169.254.169.254/32'] }],
    });
    expect(t.resolve('orders.shop.svc')?.kind).toBe('mesh');
    expect(t.resolve('ORDERS.shop.svc:80')?.kind).toBe('mesh');
    expect(t.resolve('orders.shop.svc:81')).toBeNull();
    expect(t.resolve('storage.googleapis.com')).toEqual({ kind: 'plaintext', host: 'storage.googleapis.com', port: 80 });
    expect(t.resolve('storage.googleapis.com:8080')).toBeNull();
    expect(t.resolve('googleapis.com.evil.example')).toBeNull();
    expect(t.resolve('169.254.169.254:8080')?.kind).toBe('plaintext');
    expect(t.resolve('169.254.169.253')).toBeNull();
    expect(t.resolve('payments.shop.svc')).toBeNull();
  });

  it('refuses a configuration that would allow everything or name no identity', () => {
    expect(() => new DestinationTable({ mesh: [], plaintext: [{ ports: [80] }] })).toThrow(DestinationConfigError);
    expect(() => new DestinationTable({ mesh: [{ host: 'a', port: 80, address: { host: 'b', port: 1 }, expected: {} }] })).toThrow(/names no expected identity/);
    expect(() => new DestinationTable({ mesh: [], plaintext: [{ cidrs: ['10.0.0.0/33'] }] })).toThrow(/not a CIDR/);
  });
});

describe('error catalog', () => {
  it('docs/proxy.md lists every code with its status and gRPC status', () => {
    const doc = readFileSync(join(import.meta.dirname, '../../../docs/proxy.md'), 'utf8');
    for (const [code, { status, grpcStatus }] of Object.entries(PROXY_ERROR_CATALOG)) {
      expect(doc).toMatch(new RegExp(`\\|\\s*\`${code}\`\\s*\\|\\s*${status}\\s*\\|\\s*${grpcStatus} [A-Z_]+\\s*\\|`));
    }
  });
});
