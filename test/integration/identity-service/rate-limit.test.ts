// The per-identity rate limit: over real gRPC (RESOURCE_EXHAUSTED once an identity's burst
// is spent, other identities unaffected) and the token bucket itself with a pinned clock.
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TokenBucketLimiter } from '../../../src/control-plane/identity-service/rate-limit.ts';
import { JwksAuthenticator } from '../../../src/control-plane/identity-service/token/jwks.ts';
import { AUDIENCE, certify, makeCa, makeCsr, rawClient, serviceCode, startFakeIssuer, startIdentityService, type FakeIssuer, type RunningService } from './support.ts';
import type * as grpc from '@grpc/grpc-js';

describe('rate limit per identity over gRPC', () => {
  let issuer: FakeIssuer;
  let jwks: JwksAuthenticator;
  let service: RunningService;
  let client: grpc.Client;

  beforeAll(async () => {
    const { root, ca } = await makeCa();
    issuer = await startFakeIssuer();
    jwks = new JwksAuthenticator({ jwksUrl: issuer.jwksUrl, issuer: issuer.issuer, audience: AUDIENCE, caPem: issuer.caPem });
    // A refill so slow that no token comes back during the test, whatever the machine's speed.
    service = await startIdentityService(ca, jwks, { rateLimiter: new TokenBucketLimiter({ burst: 3, refillPerSecond: 1 / 3600 }) });
    client = rawClient(service.address, root.bundlePem);
  });
  afterAll(async () => {
    client?.close();
    await service?.close();
    await jwks?.close();
    await issuer?.close();
  });

  it('allows the burst, then answers RESOURCE_EXHAUSTED with a message; another identity is not affected', async () => {
    const noisy = await issuer.mint({ namespace: 'shop', serviceAccount: 'crashloop' });
    for (let i = 0; i < 3; i++) {
      const out = await certify(client, { token: noisy, csr: await makeCsr() });
      expect(out.ok).toBe(true);
    }
    const limited = await certify(client, { token: noisy, csr: await makeCsr() });
    expect(limited.ok).toBe(false);
    if (!limited.ok) {
      expect(limited.err.code).toBe(status.RESOURCE_EXHAUSTED);
      expect(serviceCode(limited)).toBe('IDENTITY_RATE_LIMITED');
      expect(limited.err.details).toContain('spiffe://mesh.test/ns/shop/sa/crashloop');
      expect(limited.err.details).toMatch(/retry in \d+ s/);
    }
    const quiet = await issuer.mint({ namespace: 'shop', serviceAccount: 'orders' });
    expect((await certify(client, { token: quiet, csr: await makeCsr() })).ok).toBe(true);
  });
});

describe('TokenBucketLimiter', () => {
  it('refills at the configured rate and never above the burst', () => {
    let now = 0;
    const limiter = new TokenBucketLimiter({ burst: 2, refillPerSecond: 1, now: () => now });
    expect(limiter.take('a').allowed).toBe(true);
    expect(limiter.take('a').allowed).toBe(true);
    const refused = limiter.take('a');
    expect(refused).toEqual({ allowed: false, retryAfterMs: 1000 });
    now = 500;
    expect(limiter.take('a')).toEqual({ allowed: false, retryAfterMs: 500 });
    now = 1000;
    expect(limiter.take('a').allowed).toBe(true);
    now = 60_000; // a long idle time refills to the burst, not beyond
    expect(limiter.take('a').allowed).toBe(true);
    expect(limiter.take('a').allowed).toBe(true);
    expect(limiter.take('a').allowed).toBe(false);
  });

  it('forgets full buckets on sweep, and bounds how many identities it tracks', () => {
    let now = 0;
    const limiter = new TokenBucketLimiter({ burst: 1, refillPerSecond: 1, maxTracked: 3, now: () => now });
    for (const k of ['a', 'b', 'c']) limiter.take(k);
    expect(limiter.size).toBe(3);
    limiter.take('d'); // over the bound: the oldest goes
    expect(limiter.size).toBe(3);
    now = 10_000;
    limiter.sweep();
    expect(limiter.size).toBe(0);
  });

  it('refuses nonsense options', () => {
    expect(() => new TokenBucketLimiter({ burst: 0, refillPerSecond: 1 })).toThrow(/burst/);
    expect(() => new TokenBucketLimiter({ burst: 1, refillPerSecond: 0 })).toThrow(/refillPerSecond/);
  });
});
