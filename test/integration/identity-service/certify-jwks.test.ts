// Certify with tokens checked offline against the service-account issuer's JWKS: real
// ES256-signed JWTs (jose), served from a real JWKS endpoint over HTTPS on loopback.
import { status } from '@grpc/grpc-js';
import type * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CertificateAuthority } from '../../../src/control-plane/identity-service/ca.ts';
import { verifyX509Svid } from '../../../src/data-plane/identity/svid-verify.ts';
import { AllOfAuthenticators } from '../../../src/control-plane/identity-service/token/authenticator.ts';
import { JwksAuthenticator } from '../../../src/control-plane/identity-service/token/jwks.ts';
import { TokenReviewAuthenticator } from '../../../src/control-plane/identity-service/token/token-review.ts';
import {
  AUDIENCE,
  certify,
  makeCa,
  makeCsr,
  rawClient,
  serviceCode,
  startFakeApiServer,
  startFakeIssuer,
  startIdentityService,
  TRUST_DOMAIN,
  type FakeApiServer,
  type FakeIssuer,
  type MintOptions,
  type RunningService,
} from './support.ts';

let root: CertificateAuthority;
let ca: CertificateAuthority;
let issuer: FakeIssuer;
let jwks: JwksAuthenticator;
let service: RunningService;
let client: grpc.Client;

beforeAll(async () => {
  ({ root, ca } = await makeCa());
  issuer = await startFakeIssuer();
  jwks = new JwksAuthenticator({ jwksUrl: issuer.jwksUrl, issuer: issuer.issuer, audience: AUDIENCE, caPem: issuer.caPem });
  service = await startIdentityService(ca, jwks);
  client = rawClient(service.address, root.bundlePem);
});

afterAll(async () => {
  client?.close();
  await service?.close();
  await jwks?.close();
  await issuer?.close();
});

describe('Certify with the service-account issuer JWKS', () => {
  it("issues an SVID carrying the token's kubernetes.io namespace and ServiceAccount", async () => {
    const token = await issuer.mint({ namespace: 'payments', serviceAccount: 'ledger' });
    const out = await certify(client, { token, csr: await makeCsr() });
    if (!out.ok) throw out.err;
    const verified = verifyX509Svid(out.res.cert_chain, new Map([[TRUST_DOMAIN, root.bundlePem]]));
    expect(verified.spiffeId.id).toBe(`spiffe://${TRUST_DOMAIN}/ns/payments/sa/ledger`);
  });

  const refusals: [string, MintOptions | string, string][] = [
    ['an expired token', { namespace: 'payments', serviceAccount: 'ledger', expiresIn: -120 }, 'IDENTITY_TOKEN_EXPIRED'],
    ['a token for another audience', { namespace: 'payments', serviceAccount: 'ledger', audience: 'https://kubernetes.default.svc' }, 'IDENTITY_TOKEN_WRONG_AUDIENCE'],
    ['a token from another issuer', { namespace: 'payments', serviceAccount: 'ledger', issuer: 'https://evil.example' }, 'IDENTITY_TOKEN_WRONG_ISSUER'],
    ['a token signed by a key the issuer does not publish', { namespace: 'payments', serviceAccount: 'ledger', foreignKey: true }, 'IDENTITY_TOKEN_INVALID'],
    ['a token not valid yet (nbf in an hour)', { namespace: 'payments', serviceAccount: 'ledger', notBefore: 3600 }, 'IDENTITY_TOKEN_NOT_YET_VALID'],
    ['a token without the kubernetes.io claim', { namespace: 'payments', serviceAccount: 'ledger', noKubernetesClaim: true }, 'IDENTITY_TOKEN_NOT_SERVICE_ACCOUNT'],
    ['a token whose sub names another ServiceAccount than its kubernetes.io claim', { namespace: 'payments', serviceAccount: 'ledger', sub: 'system:serviceaccount:kube-system:admin' }, 'IDENTITY_TOKEN_IDENTITY_MISMATCH'],
    ['a string that is not a JWT', 'not.a.jwt', 'IDENTITY_TOKEN_INVALID'],
  ];
  for (const [name, mint, code] of refusals) {
    it(`refuses ${name}: UNAUTHENTICATED ${code}`, async () => {
      const token = typeof mint === 'string' ? mint : await issuer.mint(mint);
      const out = await certify(client, { token, csr: await makeCsr() });
      expect(out.ok).toBe(false);
      if (out.ok) return;
      expect(out.err.code).toBe(status.UNAUTHENTICATED);
      expect(serviceCode(out)).toBe(code);
    });
  }

  it('refuses an unsigned ("alg": "none") token', async () => {
    const good = await issuer.mint({ namespace: 'payments', serviceAccount: 'ledger' });
    const [, payload] = good.split('.');
    const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${payload}.`;
    const out = await certify(client, { token: none, csr: await makeCsr() });
    expect(out.ok).toBe(false);
    if (!out.ok) expect(serviceCode(out)).toBe('IDENTITY_TOKEN_INVALID');
  });

  it('answers UNAVAILABLE when the JWKS cannot be fetched', async () => {
    const down = new JwksAuthenticator({ jwksUrl: 'https://127.0.0.1:1/openid/v1/jwks', issuer: issuer.issuer, audience: AUDIENCE, caPem: issuer.caPem, timeoutMs: 2_000 });
    const token = await issuer.mint({ namespace: 'payments', serviceAccount: 'ledger' });
    await expect(down.authenticate(token)).rejects.toMatchObject({ code: 'IDENTITY_AUTHENTICATOR_UNAVAILABLE' });
    await down.close();
  });
});

describe('mode both: JWKS and TokenReview must agree', () => {
  let api: FakeApiServer;
  let review: TokenReviewAuthenticator;

  beforeAll(async () => {
    api = await startFakeApiServer();
    review = new TokenReviewAuthenticator({ apiServerUrl: api.url, caPem: api.caPem, credentialTokenPath: api.credentialPath, audience: AUDIENCE });
  });
  afterAll(async () => {
    await review?.close();
    await api?.close();
  });

  it('accepts a token both accept, and asks TokenReview only after the signature checked out', async () => {
    const both = new AllOfAuthenticators([jwks, review]);
    const token = await issuer.mint({ namespace: 'payments', serviceAccount: 'ledger' });
    api.tokens.set(token, { namespace: 'payments', serviceAccount: 'ledger', audiences: [AUDIENCE] });
    expect(await both.authenticate(token)).toMatchObject({ namespace: 'payments', serviceAccount: 'ledger' });
    const reviewsBefore = api.reviews.length;
    await expect(both.authenticate(await issuer.mint({ namespace: 'payments', serviceAccount: 'ledger', foreignKey: true }))).rejects.toMatchObject({ code: 'IDENTITY_TOKEN_INVALID' });
    expect(api.reviews.length).toBe(reviewsBefore);
  });

  it('refuses a validly signed token the API server no longer accepts (its pod was deleted)', async () => {
    const both = new AllOfAuthenticators([jwks, review]);
    const token = await issuer.mint({ namespace: 'payments', serviceAccount: 'ledger' });
    // Not registered with the API server: TokenReview says not authenticated.
    await expect(both.authenticate(token)).rejects.toMatchObject({ code: 'IDENTITY_TOKEN_INVALID' });
  });

  it('refuses when the two disagree on the ServiceAccount', async () => {
    const both = new AllOfAuthenticators([jwks, review]);
    const token = await issuer.mint({ namespace: 'payments', serviceAccount: 'ledger' });
    api.tokens.set(token, { namespace: 'payments', serviceAccount: 'auditor', audiences: [AUDIENCE] });
    await expect(both.authenticate(token)).rejects.toMatchObject({ code: 'IDENTITY_TOKEN_IDENTITY_MISMATCH' });
  });
});
