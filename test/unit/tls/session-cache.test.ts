import { describe, expect, it } from 'vitest';
import { ClientSessionCache, type CachedSession } from '../../../src/data-plane/tls/session-cache.ts';

function entry(name: string, expiresAt: number): CachedSession {
  return {
    session: Buffer.from(name),
    chain: [Buffer.from(`leaf of ${name}`)],
    peer: { spiffeId: { id: `spiffe://cluster.local/ns/shop/sa/${name}` }, notAfter: new Date(expiresAt) } as CachedSession['peer'],
    establishedAt: 0,
    expiresAt,
  };
}

describe('ClientSessionCache (the outbound side of TLS session resumption)', () => {
  it('keys a session by destination AND expected identity', () => {
    const cache = new ClientSessionCache({ now: () => 0 });
    const a = ClientSessionCache.key({ host: '10.0.0.1', port: 8080 }, 'id spiffe://cluster.local/ns/shop/sa/orders');
    const b = ClientSessionCache.key({ host: '10.0.0.1', port: 8080 }, 'id spiffe://cluster.local/ns/shop/sa/billing');
    const c = ClientSessionCache.key({ host: '10.0.0.1', port: 8081 }, 'id spiffe://cluster.local/ns/shop/sa/orders');
    expect(new Set([a, b, c]).size).toBe(3);
    cache.set(a, entry('orders', 10));
    expect(cache.get(a)?.session.toString()).toBe('orders');
    expect(cache.get(b)).toBeUndefined();
    expect(cache.get(c)).toBeUndefined();
  });

  it('never hands out a session at or after its expiry, and drops it', () => {
    let now = 0;
    const cache = new ClientSessionCache({ now: () => now });
    cache.set('k', entry('orders', 100));
    now = 99;
    expect(cache.get('k')).toBeDefined();
    now = 100;
    expect(cache.get('k')).toBeUndefined();
    expect(cache.size).toBe(0);
    cache.set('k', entry('orders', 50)); // already expired: not kept
    expect(cache.size).toBe(0);
  });

  it('the newest session of a key replaces the previous one', () => {
    const cache = new ClientSessionCache({ now: () => 0 });
    cache.set('k', entry('first', 10));
    cache.set('k', entry('second', 10));
    expect(cache.size).toBe(1);
    expect(cache.get('k')?.session.toString()).toBe('second');
  });

  it('stays within its size, dropping the least recently used first', () => {
    const cache = new ClientSessionCache({ maxEntries: 3, now: () => 0 });
    for (const k of ['a', 'b', 'c']) cache.set(k, entry(k, 10));
    expect(cache.get('a')).toBeDefined(); // a is now the most recently used
    cache.set('d', entry('d', 10));
    expect(cache.size).toBe(3);
    expect(cache.get('b')).toBeUndefined();
    expect(['a', 'c', 'd'].map((k) => cache.get(k)?.session.toString())).toEqual(['a', 'c', 'd']);
    for (let i = 0; i < 1000; i++) cache.set(`k${i}`, entry(`k${i}`, 10));
    expect(cache.size).toBe(3);
  });

  it('delete and clear', () => {
    const cache = new ClientSessionCache({ now: () => 0 });
    cache.set('a', entry('a', 10));
    cache.set('b', entry('b', 10));
    cache.delete('a');
    expect(cache.get('a')).toBeUndefined();
    cache.clear();
    expect(cache.size).toBe(0);
  });
});
