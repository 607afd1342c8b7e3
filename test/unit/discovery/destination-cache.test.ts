// The sidecar's cache of discovery answers (src/data-plane/discovery/destination-cache.ts):
// synchronous hits, single flight, TTLs on an injected clock, the bound, failure backoff, and
// never an expired `unmeshed`.
import { describe, expect, it } from 'vitest';
import { ClusterScope } from '../../../src/data-plane/discovery/cluster-scope.ts';
import { DestinationCache, type DestinationCacheOptions } from '../../../src/data-plane/discovery/destination-cache.ts';
import type { Destination, DestinationResolver, Resolution, ResolveFailure, UnavailableResolution } from '../../../src/data-plane/discovery/resolution.ts';

type Answer = Exclude<Resolution, UnavailableResolution> | ResolveFailure;

const ID = 'spiffe://mesh.test/ns/shop/sa/orders';
const meshed: Answer = { kind: 'meshed', identities: [ID], protocol: 'http', endpoints: [{ address: '10.244.1.10', port: 8080, identity: ID, ready: true }], endpointsTruncated: false, service: 'orders.shop', reason: 'every endpoint meshed' };
const unmeshed: Answer = { kind: 'unmeshed', protocol: 'tcp', endpoints: [{ address: '10.244.1.20', port: 5432, identity: undefined, ready: true }], endpointsTruncated: false, service: 'legacy.shop', reason: 'no endpoint meshed' };
const external: Answer = { kind: 'external', externalName: '', reason: 'outside the cluster' };
const unknown: Answer = { kind: 'unknown', reason: 'no such pod (yet)' };
const down: ResolveFailure = { kind: 'unavailable', reason: 'unreachable', detail: 'Resolve at x failed: UNAVAILABLE: No connection established' };

/** A resolver whose calls the test answers one by one. */
class ScriptedResolver implements DestinationResolver {
  readonly calls: { destination: Destination; answer: (a: Answer) => void }[] = [];
  resolve(destination: Destination): Promise<Answer> {
    return new Promise((resolve) => this.calls.push({ destination, answer: resolve }));
  }
  /** Answers the oldest pending call. */
  answer(a: Answer): void {
    const call = this.calls.shift();
    if (!call) throw new Error('no pending call');
    call.answer(a);
  }
}

/** A resolver that answers at once with whatever `next` says for that destination. */
class InstantResolver implements DestinationResolver {
  calls = 0;
  next: (d: Destination) => Answer;
  constructor(next: (d: Destination) => Answer) {
    this.next = next;
  }
  async resolve(d: Destination): Promise<Answer> {
    this.calls++;
    return this.next(d);
  }
}

const scope = new ClusterScope({ clusterDomain: 'cluster.local', cidrs: ['10.244.0.0/16', '10.96.0.0/16'] });

function make(resolver: DestinationResolver, o: Partial<DestinationCacheOptions> = {}) {
  let now = 1_000_000;
  const cache = new DestinationCache({ resolver, scope, now: () => now, ...o });
  return { cache, advance: (ms: number) => (now += ms) };
}

const orders = { host: '10.96.0.10', port: 80 };
const flush = () => new Promise((r) => setImmediate(r));

describe('DestinationCache', () => {
  it('a miss returns a promise; once answered, the same Resolution object synchronously', async () => {
    const resolver = new InstantResolver(() => meshed);
    const { cache } = make(resolver);
    const first = cache.resolve(orders);
    expect(first).toBeInstanceOf(Promise);
    const answered = await first;
    expect(answered).toEqual(meshed);
    const hit = cache.resolve(orders);
    expect(hit).not.toBeInstanceOf(Promise);
    expect(hit).toBe(answered);
    expect(cache.resolve({ host: '10.96.0.10', port: 80 })).toBe(answered);
    expect(resolver.calls).toBe(1);
  });

  it('keys by port, and by the canonical host (brackets, case, IPv4-mapped, trailing dot)', async () => {
    const resolver = new InstantResolver((d) => (d.port === 80 ? meshed : unmeshed));
    const { cache } = make(resolver);
    await cache.resolve({ host: 'Orders.Shop.', port: 80 });
    await cache.resolve({ host: 'orders.shop', port: 5432 });
    expect(resolver.calls).toBe(2);
    expect(cache.resolve({ host: 'orders.shop', port: 80 })).toEqual(meshed);
    expect(cache.resolve({ host: 'ORDERS.SHOP', port: 5432 })).toEqual(unmeshed);
    await cache.resolve({ host: '[fd00:10:96:0:0:0:0:10]', port: 80 });
    expect(cache.resolve({ host: 'fd00:10:96::10', port: 80 })).toEqual(meshed);
    await cache.resolve({ host: '::ffff:10.96.0.11', port: 80 });
    expect(cache.resolve({ host: '10.96.0.11', port: 80 })).toEqual(meshed);
    expect(resolver.calls).toBe(4);
  });

  it('single flight: concurrent misses share one Resolve call and get the same answer', async () => {
    const resolver = new ScriptedResolver();
    const { cache } = make(resolver);
    const a = cache.resolve(orders);
    const b = cache.resolve(orders);
    const c = cache.resolve({ host: '10.96.0.10', port: 80 });
    expect(a).toBe(b);
    expect(a).toBe(c);
    expect(resolver.calls).toHaveLength(1);
    const other = cache.resolve({ host: '10.96.0.20', port: 80 });
    expect(resolver.calls).toHaveLength(2);
    resolver.answer(meshed);
    resolver.answer(unmeshed);
    expect(await a).toEqual(meshed);
    expect(await other).toEqual(unmeshed);
  });

  it('positive answers expire after positiveTtlMs, negative ones after negativeTtlMs, unknown after unknownTtlMs', async () => {
    const answers: Record<string, Answer> = { '10.96.0.10': meshed, '10.96.0.20': unmeshed, '8.8.8.8': external, '10.244.9.9': unknown };
    const resolver = new InstantResolver((d) => answers[d.host]!);
    const { cache, advance } = make(resolver, { positiveTtlMs: 10_000, negativeTtlMs: 5_000, unknownTtlMs: 1_000, refreshAheadFraction: 0 });
    for (const host of Object.keys(answers)) await cache.resolve({ host, port: 80 });
    expect(resolver.calls).toBe(4);
    advance(999);
    for (const host of Object.keys(answers)) expect(cache.resolve({ host, port: 80 })).not.toBeInstanceOf(Promise);
    advance(1);
    expect(cache.resolve({ host: '10.244.9.9', port: 80 })).toBeInstanceOf(Promise);
    advance(3_999);
    expect(cache.resolve({ host: '10.96.0.20', port: 80 })).not.toBeInstanceOf(Promise);
    expect(cache.resolve({ host: '8.8.8.8', port: 80 })).not.toBeInstanceOf(Promise);
    advance(1);
    expect(cache.resolve({ host: '10.96.0.20', port: 80 })).toBeInstanceOf(Promise);
    expect(cache.resolve({ host: '8.8.8.8', port: 80 })).toBeInstanceOf(Promise);
    expect(cache.resolve(orders)).not.toBeInstanceOf(Promise);
    advance(5_000);
    expect(cache.resolve(orders)).toBeInstanceOf(Promise);
  });

  it('an answer that changed is seen after the TTL: unmeshed → meshed', async () => {
    let answer: Answer = unmeshed;
    const resolver = new InstantResolver(() => answer);
    const { cache, advance } = make(resolver, { refreshAheadFraction: 0 });
    expect(await cache.resolve(orders)).toEqual(unmeshed);
    answer = meshed;
    advance(9_999);
    expect(cache.resolve(orders)).toEqual(unmeshed);
    advance(1);
    expect(await cache.resolve(orders)).toEqual(meshed);
  });

  it('refreshes a hot answer ahead of its expiry, in the background, serving the current one meanwhile', async () => {
    let answer: Answer = meshed;
    const resolver = new ScriptedResolver();
    const { cache, advance } = make(resolver, { positiveTtlMs: 10_000, refreshAheadFraction: 0.2 });
    const first = cache.resolve(orders);
    resolver.answer(answer);
    await first;
    advance(7_999);
    expect(cache.resolve(orders)).toEqual(meshed);
    expect(resolver.calls).toHaveLength(0);
    advance(1);
    expect(cache.resolve(orders)).toEqual(meshed); // served; a refresh started
    expect(cache.resolve(orders)).toEqual(meshed); // one refresh, not one per hit
    expect(resolver.calls).toHaveLength(1);
    answer = { ...meshed, identities: ['spiffe://mesh.test/ns/shop/sa/orders-v2'] };
    resolver.answer(answer);
    await flush();
    advance(5_000); // past the first answer's TTL: the refreshed one holds
    expect(cache.resolve(orders)).toBe(answer);
  });

  it('a failed refresh keeps the answer until its own TTL, no longer, and waits the backoff before retrying', async () => {
    const resolver = new ScriptedResolver();
    const { cache, advance } = make(resolver, { positiveTtlMs: 10_000, refreshAheadFraction: 0.2, failureBackoffMs: 1_000 });
    const first = cache.resolve(orders);
    resolver.answer(meshed);
    await first;
    advance(8_000);
    expect(cache.resolve(orders)).toEqual(meshed);
    resolver.answer(down);
    await flush();
    advance(500);
    expect(cache.resolve(orders)).toEqual(meshed);
    expect(resolver.calls).toHaveLength(0); // within the backoff: no new refresh
    advance(500);
    expect(cache.resolve(orders)).toEqual(meshed);
    expect(resolver.calls).toHaveLength(1); // backoff over: refresh again
    resolver.answer(down);
    await flush();
    advance(1_000); // the answer's TTL is over: it is not served any more
    const after = cache.resolve(orders);
    expect(after).toBeInstanceOf(Promise);
    resolver.answer(down);
    expect(await after).toEqual({ ...down, inCluster: true });
  });

  it('never serves an expired unmeshed answer, even when discovery is down', async () => {
    let answer: Answer = unmeshed;
    const resolver = new InstantResolver(() => answer);
    const { cache, advance } = make(resolver, { refreshAheadFraction: 0.2, negativeTtlMs: 10_000 });
    expect(await cache.resolve(orders)).toEqual(unmeshed);
    answer = down;
    advance(8_500); // refresh ahead fails...
    expect(cache.resolve(orders)).toEqual(unmeshed);
    await flush();
    advance(1_499);
    expect(cache.resolve(orders)).toEqual(unmeshed); // ...the answer is still within its TTL
    advance(1);
    const r = await cache.resolve(orders);
    expect(r).toMatchObject({ kind: 'unavailable', reason: 'unreachable', inCluster: true });
    advance(60_000);
    expect(await cache.resolve(orders)).toMatchObject({ kind: 'unavailable' });
  });

  it('a failure is remembered for failureBackoffMs only, and says whether the destination may be in the cluster', async () => {
    let answer: Answer = down;
    const resolver = new InstantResolver(() => answer);
    const { cache, advance } = make(resolver, { failureBackoffMs: 1_000 });
    expect(await cache.resolve(orders)).toEqual({ ...down, inCluster: true });
    expect(await cache.resolve({ host: 'api.example.com', port: 443 })).toMatchObject({ kind: 'unavailable', inCluster: false });
    expect(await cache.resolve({ host: 'orders.shop', port: 80 })).toMatchObject({ kind: 'unavailable', inCluster: true });
    expect(resolver.calls).toBe(3);
    advance(999);
    expect(cache.resolve(orders)).toMatchObject({ kind: 'unavailable' });
    expect(resolver.calls).toBe(3);
    answer = meshed;
    advance(1);
    expect(await cache.resolve(orders)).toEqual(meshed);
    expect(resolver.calls).toBe(4);
  });

  it('a resolver that throws or rejects is an unavailable answer, not an exception', async () => {
    const { cache } = make({ resolve: () => Promise.reject(new Error('boom')) });
    expect(await cache.resolve(orders)).toMatchObject({ kind: 'unavailable', reason: 'internal', inCluster: true });
    const { cache: c2 } = make({
      resolve: () => {
        throw new Error('sync boom');
      },
    });
    expect(await c2.resolve({ host: '1.1.1.1', port: 53 })).toMatchObject({ kind: 'unavailable', reason: 'internal', inCluster: false });
  });

  it('is bounded: the least recently used key is evicted first', async () => {
    const resolver = new InstantResolver(() => meshed);
    const { cache } = make(resolver, { maxEntries: 3 });
    const d = (i: number) => ({ host: `10.96.0.${i}`, port: 80 });
    for (const i of [1, 2, 3]) await cache.resolve(d(i));
    expect(cache.size).toBe(3);
    cache.resolve(d(1)); // 1 is now the most recently used
    await cache.resolve(d(4)); // evicts 2
    expect(cache.size).toBe(3);
    expect(resolver.calls).toBe(4);
    expect(cache.resolve(d(1))).not.toBeInstanceOf(Promise);
    expect(cache.resolve(d(3))).not.toBeInstanceOf(Promise);
    expect(cache.resolve(d(4))).not.toBeInstanceOf(Promise);
    expect(cache.resolve(d(2))).toBeInstanceOf(Promise);
    await flush();
    expect(cache.size).toBe(3);
    for (let i = 10; i < 1_000; i++) await cache.resolve(d(i % 250));
    expect(cache.size).toBe(3);
  });

  it('a key evicted while being fetched still answers its callers, and does not come back', async () => {
    const resolver = new ScriptedResolver();
    const { cache } = make(resolver, { maxEntries: 1 });
    const a = cache.resolve(orders);
    const b = cache.resolve({ host: '10.96.0.20', port: 80 });
    resolver.answer(meshed);
    resolver.answer(unmeshed);
    expect(await a).toEqual(meshed);
    expect(await b).toEqual(unmeshed);
    expect(cache.size).toBe(1);
    expect(cache.resolve({ host: '10.96.0.20', port: 80 })).toEqual(unmeshed);
    expect(cache.resolve(orders)).toBeInstanceOf(Promise);
  });

  it('clear() drops every answer', async () => {
    const resolver = new InstantResolver(() => meshed);
    const { cache } = make(resolver);
    await cache.resolve(orders);
    cache.clear();
    expect(cache.size).toBe(0);
    expect(cache.resolve(orders)).toBeInstanceOf(Promise);
  });
});

describe('ClusterScope (where a destination with no answer may be)', () => {
  it.each([
    ['10.244.3.4', true],
    ['10.96.0.1', true],
    ['[::ffff:10.244.3.4]', true],
    ['10.245.0.1', false],
    ['8.8.8.8', false],
    ['orders', true],
    ['orders.shop', true],
    ['orders.shop.svc', true],
    ['orders.shop.svc.cluster.local', true],
    ['orders.shop.svc.cluster.local.', true],
    ['ANYTHING.Cluster.Local', true],
    ['api.example.com', false],
    ['www.example.co.uk', false],
  ])('%s → inside: %s', (host, inside) => {
    expect(scope.contains(host)).toBe(inside);
  });

  it('with no CIDRs, every address counts as inside (fail closed)', () => {
    const none = new ClusterScope({ clusterDomain: 'cluster.local', cidrs: [] });
    expect(none.contains('8.8.8.8')).toBe(true);
    expect(none.contains('2001:db8::1')).toBe(true);
    expect(none.contains('api.example.com')).toBe(false);
  });

  it('IPv6 CIDRs', () => {
    const v6 = new ClusterScope({ clusterDomain: 'cluster.local', cidrs: ['fd00:10:244::/56'] });
    expect(v6.contains('fd00:10:244:0:0:0:0:a')).toBe(true);
    expect(v6.contains('[fd00:10:244::a]')).toBe(true);
    expect(v6.contains('fd00:10:245::a')).toBe(false);
  });
});
