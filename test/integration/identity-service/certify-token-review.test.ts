// Certify over real TLS gRPC, tokens checked by TokenReview against a Kubernetes API server
// stand-in (HTTPS on loopback, real TokenReview JSON).
import { status } from '@grpc/grpc-js';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { derToPem, pemCertificatesToDer } from '../../../src/data-plane/identity/pem.ts';
import { verifyX509Svid } from '../../../src/data-plane/identity/svid-verify.ts';
import { TokenReviewAuthenticator } from '../../../src/control-plane/identity-service/token/token-review.ts';
import type { CertificateAuthority } from '../../../src/control-plane/identity-service/ca.ts';
import {
  AUDIENCE,
  captureLogger,
  certify,
  issueOpaqueToken,
  makeCa,
  makeCsr,
  rawClient,
  serviceCode,
  startFakeApiServer,
  startIdentityService,
  tempDir,
  TRUST_DOMAIN,
  waitFor,
  type FakeApiServer,
  type RunningService,
} from './support.ts';

let root: CertificateAuthority;
let api: FakeApiServer;
let service: RunningService;
let client: grpc.Client;
let authenticator: TokenReviewAuthenticator;
const log = captureLogger();

beforeAll(async () => {
  const cas = await makeCa();
  root = cas.root;
  api = await startFakeApiServer();
  authenticator = new TokenReviewAuthenticator({ apiServerUrl: api.url, caPem: api.caPem, credentialTokenPath: api.credentialPath, audience: AUDIENCE });
  service = await startIdentityService(cas.ca, authenticator, { logger: log.logger });
  client = rawClient(service.address, root.bundlePem);
});

afterAll(async () => {
  client?.close();
  await service?.close();
  await authenticator?.close();
  await api?.close();
});

describe('Certify with TokenReview', () => {
  it('issues an SVID for the namespace and ServiceAccount the token proves, which verifies against the bundle', async () => {
    const token = issueOpaqueToken(api, { namespace: 'shop', serviceAccount: 'orders', audiences: [AUDIENCE], pod: 'orders-5d8c7-x2x9q' });
    const out = await certify(client, { token, csr: await makeCsr() });
    if (!out.ok) throw out.err;
    expect(out.res.spiffe_id).toBe(`spiffe://${TRUST_DOMAIN}/ns/shop/sa/orders`);
    expect(out.res.cert_chain.length).toBe(2); // leaf + the in-cluster intermediate
    // The bundle is the trust domain's root (not the intermediate), and the chain verifies against it.
    expect(out.res.bundle.map((d) => derToPem(d))).toEqual(pemCertificatesToDer(root.bundlePem).map((d) => derToPem(d)));
    const verified = verifyX509Svid(out.res.cert_chain, new Map([[TRUST_DOMAIN, out.res.bundle.map((d) => derToPem(d)).join('')]]));
    expect(verified.spiffeId.id).toBe(`spiffe://${TRUST_DOMAIN}/ns/shop/sa/orders`);
    expect(out.res.not_after).toBe(Math.floor(verified.notAfter.getTime() / 1000));
    // The service asked the API server about OUR audience.
    const review = api.reviews.at(-1) as { spec: { token: string; audiences: string[] } };
    expect(review.spec).toEqual({ token, audiences: [AUDIENCE] });
    expect(log.lines.some((l) => l['event'] === 'svid_issued' && l['spiffeId'] === `spiffe://${TRUST_DOMAIN}/ns/shop/sa/orders` && l['pod'] === 'orders-5d8c7-x2x9q')).toBe(true);
  });

  it('never logs the token', async () => {
    const token = issueOpaqueToken(api, { namespace: 'shop', serviceAccount: 'cart', audiences: [AUDIENCE] });
    await certify(client, { token, csr: await makeCsr() });
    await certify(client, { token: token + 'x', csr: await makeCsr() });
    expect(JSON.stringify(log.lines)).not.toContain(token);
  });

  const refusals: [string, () => string, string][] = [
    ['a token the API server does not know', () => 'eyJnot-a-real-token', 'IDENTITY_TOKEN_INVALID'],
    ['an expired token', () => issueOpaqueToken(api, { namespace: 'shop', serviceAccount: 'orders', audiences: [AUDIENCE], expired: true }), 'IDENTITY_TOKEN_EXPIRED'],
    ['a token for another audience', () => issueOpaqueToken(api, { namespace: 'shop', serviceAccount: 'orders', audiences: ['https://kubernetes.default.svc'] }), 'IDENTITY_TOKEN_WRONG_AUDIENCE'],
    ['a token of a user, not a ServiceAccount', () => issueOpaqueToken(api, { namespace: 'shop', serviceAccount: 'user:alice@example.com', audiences: [AUDIENCE] }), 'IDENTITY_TOKEN_NOT_SERVICE_ACCOUNT'],
  ];
  for (const [name, token, code] of refusals) {
    it(`refuses ${name}: UNAUTHENTICATED ${code}, with a log line`, async () => {
      const out = await certify(client, { token: token(), csr: await makeCsr() });
      expect(out.ok).toBe(false);
      if (out.ok) return;
      expect(out.err.code).toBe(status.UNAUTHENTICATED);
      expect(serviceCode(out)).toBe(code);
      expect(log.lines.some((l) => l['event'] === 'svid_refused' && l['code'] === code)).toBe(true);
    });
  }

  it('checks status.audiences itself: an API server that ignores spec.audiences does not let other tokens in', async () => {
    const token = issueOpaqueToken(api, { namespace: 'shop', serviceAccount: 'orders', audiences: ['https://kubernetes.default.svc.cluster.local'] });
    api.ignoreAudiences = true;
    try {
      const out = await certify(client, { token, csr: await makeCsr() });
      expect(out.ok).toBe(false);
      if (!out.ok) {
        expect(out.err.code).toBe(status.UNAUTHENTICATED);
        expect(serviceCode(out)).toBe('IDENTITY_TOKEN_WRONG_AUDIENCE');
      }
    } finally {
      api.ignoreAudiences = false;
    }
  });

  it('answers UNAVAILABLE (retryable, not the caller\'s fault) when its own API credential is refused or missing', async () => {
    const { dir, cleanup } = await tempDir();
    const wrongCredential = join(dir, 'token');
    await writeFile(wrongCredential, 'an-old-revoked-token');
    const refused = new TokenReviewAuthenticator({ apiServerUrl: api.url, caPem: api.caPem, credentialTokenPath: wrongCredential, audience: AUDIENCE });
    const missing = new TokenReviewAuthenticator({ apiServerUrl: api.url, caPem: api.caPem, credentialTokenPath: join(dir, 'absent'), audience: AUDIENCE });
    try {
      const token = issueOpaqueToken(api, { namespace: 'shop', serviceAccount: 'orders', audiences: [AUDIENCE] });
      await expect(refused.authenticate(token)).rejects.toMatchObject({ code: 'IDENTITY_AUTHENTICATOR_UNAVAILABLE', message: expect.stringContaining('HTTP 401') });
      await expect(missing.authenticate(token)).rejects.toMatchObject({ code: 'IDENTITY_AUTHENTICATOR_UNAVAILABLE', message: expect.stringContaining('cannot read') });
    } finally {
      await refused.close();
      await missing.close();
      await cleanup();
    }
  });

  it('refuses at once with UNAVAILABLE IDENTITY_OVERLOADED beyond maxInFlight, instead of queueing', async () => {
    const cas = await makeCa();
    const svc = await startIdentityService(cas.ca, authenticator, { limits: { maxInFlight: 1 } });
    const c = rawClient(svc.address, cas.root.bundlePem);
    let release!: () => void;
    api.hold = new Promise<void>((r) => (release = r));
    try {
      const token = issueOpaqueToken(api, { namespace: 'shop', serviceAccount: 'orders', audiences: [AUDIENCE] });
      const reviewsBefore = api.reviews.length;
      const slow = certify(c, { token, csr: await makeCsr() });
      await waitFor(() => api.reviews.length > reviewsBefore, 'the first call to reach TokenReview');
      const refused = await certify(c, { token, csr: await makeCsr() });
      expect(refused.ok).toBe(false);
      if (!refused.ok) {
        expect(refused.err.code).toBe(status.UNAVAILABLE);
        expect(serviceCode(refused)).toBe('IDENTITY_OVERLOADED');
      }
      release();
      expect((await slow).ok).toBe(true);
      // The slot is free again.
      api.hold = undefined;
      expect((await certify(c, { token, csr: await makeCsr() })).ok).toBe(true);
    } finally {
      api.hold = undefined;
      release();
      c.close();
      await svc.close();
    }
  });

  it('answers UNAVAILABLE when the API server cannot be reached', async () => {
    const cas = await makeCa();
    const down = new TokenReviewAuthenticator({ apiServerUrl: 'https://127.0.0.1:1', caPem: api.caPem, credentialTokenPath: api.credentialPath, audience: AUDIENCE, timeoutMs: 2_000 });
    const svc = await startIdentityService(cas.ca, down);
    const c = rawClient(svc.address, cas.root.bundlePem);
    try {
      const token = issueOpaqueToken(api, { namespace: 'shop', serviceAccount: 'orders', audiences: [AUDIENCE] });
      const out = await certify(c, { token, csr: await makeCsr() });
      expect(out.ok).toBe(false);
      if (!out.ok) {
        expect(out.err.code).toBe(status.UNAVAILABLE);
        expect(serviceCode(out)).toBe('IDENTITY_AUTHENTICATOR_UNAVAILABLE');
      }
    } finally {
      c.close();
      await svc.close();
      await down.close();
    }
  });
});
