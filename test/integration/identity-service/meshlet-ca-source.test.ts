// The sidecar's meshlet-ca identity source against a real identity service (TLS gRPC on
// 127.0.0.1, TokenReview against the API server stand-in): first SVID, renewal, riding out
// a CA outage, token rotation, and the failures start() must report.
import { status } from '@grpc/grpc-js';
import { X509Certificate } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { CertificateAuthority } from '../../../src/control-plane/identity-service/ca.ts';
import { pemCertificatesToDer } from '../../../src/data-plane/identity/pem.ts';
import { TokenReviewAuthenticator } from '../../../src/control-plane/identity-service/token/token-review.ts';
import { CertifyCallError, MeshletCaSource, type MeshletCaSourceOptions } from '../../../src/data-plane/identity/sources/meshlet-ca.ts';
import { verifyX509Svid } from '../../../src/data-plane/identity/svid-verify.ts';
import type { IdentitySnapshot } from '../../../src/data-plane/identity/svid.ts';
import { AUDIENCE, issueOpaqueToken, makeCa, SERVER_ID, startFakeApiServer, startIdentityService, tempDir, TRUST_DOMAIN, waitFor, type FakeApiServer } from './support.ts';

const ID = `spiffe://${TRUST_DOMAIN}/ns/shop/sa/orders`;

let root: CertificateAuthority;
let ca: CertificateAuthority;
let api: FakeApiServer;
let authenticator: TokenReviewAuthenticator;
let dir: string;
let cleanupDir: () => Promise<void>;
let tokenPath: string;
const toClose: { close(): Promise<void> }[] = [];

beforeAll(async () => {
  ({ root, ca } = await makeCa());
  api = await startFakeApiServer();
  authenticator = new TokenReviewAuthenticator({ apiServerUrl: api.url, caPem: api.caPem, credentialTokenPath: api.credentialPath, audience: AUDIENCE });
  ({ dir, cleanup: cleanupDir } = await tempDir());
  tokenPath = join(dir, 'token');
  await writeFile(tokenPath, issueOpaqueToken(api, { namespace: 'shop', serviceAccount: 'orders', audiences: [AUDIENCE] }));
});

afterEach(async () => {
  // Sources first (they hold channels to the services), then services.
  for (const c of toClose.splice(0).reverse()) await c.close();
});

afterAll(async () => {
  await authenticator?.close();
  await api?.close();
  await cleanupDir?.();
});

function source(address: string, extra: Partial<MeshletCaSourceOptions> = {}): MeshletCaSource {
  const s = new MeshletCaSource({
    address,
    trustDomain: TRUST_DOMAIN,
    rootsPem: root.bundlePem,
    tokenPath,
    server: { spiffeId: SERVER_ID },
    retry: { initialMs: 100, maxMs: 400, factor: 2, jitter: 0.2 },
    startTimeoutMs: 30_000,
    ...extra,
  });
  toClose.push(s);
  return s;
}

function serialOf(s: IdentitySnapshot): string {
  return new X509Certificate(s.svid.certChainPem).serialNumber;
}

describe('MeshletCaSource', () => {
  it('gets a first SVID for the identity the token proves; it verifies against the bundle it came with', async () => {
    const svc = await startIdentityService(ca, authenticator);
    toClose.push(svc);
    const src = source(svc.address);
    expect(src.kind).toBe('meshlet-ca');
    expect(src.current()).toBeUndefined();
    const snap = await src.start();
    expect(snap.svid.spiffeId.id).toBe(ID);
    expect(src.current()).toBe(snap);
    expect(verifyX509Svid(pemCertificatesToDer(snap.svid.certChainPem), snap.bundles).spiffeId.id).toBe(ID);
    expect(snap.bundles.get(TRUST_DOMAIN)).toBeDefined();
    // The key never left the process: the CSR carried only the public half.
    expect(snap.svid.privateKeyPem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
  });

  it('renews before expiry (new key, new serial) and emits an update; re-reads the token file each time', async () => {
    const svc = await startIdentityService(ca, authenticator, { svidTtlMs: 3_000 });
    toClose.push(svc);
    const src = source(svc.address);
    const updates: IdentitySnapshot[] = [];
    src.onUpdate((s) => updates.push(s));
    const first = await src.start();
    expect(updates.length).toBe(0); // the first SVID is start()'s result, not a rotation
    // kubelet rotates the projected token in place; the next Certify must carry the new one.
    const rotated = issueOpaqueToken(api, { namespace: 'shop', serviceAccount: 'orders', audiences: [AUDIENCE] });
    await writeFile(tokenPath, rotated);
    await waitFor(() => updates.length >= 1, 'a renewal');
    const renewed = updates[0]!;
    expect(renewed.svid.spiffeId.id).toBe(ID);
    expect(serialOf(renewed)).not.toBe(serialOf(first));
    expect(renewed.svid.privateKeyPem).not.toBe(first.svid.privateKeyPem);
    expect(src.current()).toBe(updates.at(-1));
    // Renewals keep coming every ~1.3 s: one of them carries the rotated token.
    await waitFor(() => api.reviews.some((r) => (r as { spec: { token: string } }).spec.token === rotated), 'a Certify with the rotated token');
  });

  it('keeps serving the current SVID while the CA is down, reports expiry, and picks up a new SVID when it is back', async () => {
    const first = await startIdentityService(ca, authenticator, { svidTtlMs: 3_000 });
    const port = first.port;
    const src = source(first.address);
    const errors: Error[] = [];
    const updates: IdentitySnapshot[] = [];
    src.onError((e) => errors.push(e));
    src.onUpdate((s) => updates.push(s));
    const initial = await src.start();
    await first.close();

    await waitFor(() => errors.some((e) => e instanceof CertifyCallError && e.grpcStatus === status.UNAVAILABLE), 'a failed renewal');
    expect(src.current()).toBe(initial);
    await waitFor(() => errors.some((e) => (e as { code?: string }).code === 'MESHLET_CA_SVID_EXPIRED'), 'the expiry report');
    expect(src.current()).toBe(initial); // still the last one: nothing better to serve

    const updatesBefore = updates.length;
    const second = await startIdentityService(ca, authenticator, { port, svidTtlMs: 3_600_000 });
    toClose.push(second);
    await waitFor(() => updates.length > updatesBefore, 'a new SVID after the CA came back');
    expect(src.current()!.svid.notAfter.getTime()).toBeGreaterThan(Date.now());
    expect(serialOf(src.current()!)).not.toBe(serialOf(initial));
  });

  it('start() fails at once, with the service code, when the token is refused (no point retrying)', async () => {
    const svc = await startIdentityService(ca, authenticator);
    toClose.push(svc);
    const { dir: d, cleanup } = await tempDir();
    try {
      const badToken = join(d, 'token');
      await writeFile(badToken, issueOpaqueToken(api, { namespace: 'shop', serviceAccount: 'orders', audiences: ['https://kubernetes.default.svc'] }));
      const err = await source(svc.address, { tokenPath: badToken }).start().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CertifyCallError);
      expect(err).toMatchObject({ code: 'MESHLET_CA_CERTIFY_FAILED', grpcStatus: status.UNAUTHENTICATED, serviceCode: 'IDENTITY_TOKEN_WRONG_AUDIENCE' });
    } finally {
      await cleanup();
    }
  });

  it('refuses an identity service that presents another SPIFFE ID (start times out with the TLS failure as cause)', async () => {
    const svc = await startIdentityService(ca, authenticator);
    toClose.push(svc);
    const src = source(svc.address, { server: { spiffeId: `spiffe://${TRUST_DOMAIN}/ns/evil/sa/impostor` }, startTimeoutMs: 1_000 });
    const errors: Error[] = [];
    src.onError((e) => errors.push(e));
    const err = await src.start().catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'MESHLET_CA_START_TIMEOUT' });
    expect(errors.length).toBeGreaterThan(0);
    expect(errors[0]).toMatchObject({ code: 'MESHLET_CA_CERTIFY_FAILED', grpcStatus: status.UNAVAILABLE });
    expect(src.current()).toBeUndefined();
  });

  it('refuses an identity service whose certificate does not chain to the configured roots', async () => {
    const svc = await startIdentityService(ca, authenticator);
    toClose.push(svc);
    const other = await makeCa();
    const src = source(svc.address, { rootsPem: other.root.bundlePem, startTimeoutMs: 1_000 });
    const err = await src.start().catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'MESHLET_CA_START_TIMEOUT' });
    expect((err as Error).message).toMatch(/UNAVAILABLE/);
  });

  it('reports an unreadable token file with its own code', async () => {
    const svc = await startIdentityService(ca, authenticator);
    toClose.push(svc);
    const src = source(svc.address, { tokenPath: join(dir, 'no-such-token'), startTimeoutMs: 600 });
    const errors: Error[] = [];
    src.onError((e) => errors.push(e));
    await expect(src.start()).rejects.toMatchObject({ code: 'MESHLET_CA_START_TIMEOUT' });
    expect(errors[0]).toMatchObject({ code: 'MESHLET_CA_TOKEN_UNREADABLE' });
  });

  it('close() during start() rejects it with MESHLET_CA_CLOSED', async () => {
    const src = source('127.0.0.1:1', { startTimeoutMs: 60_000 });
    const started = src.start();
    const errors: Error[] = [];
    src.onError((e) => errors.push(e));
    await waitFor(() => errors.length > 0, 'a first failed attempt');
    await src.close();
    await expect(started).rejects.toMatchObject({ code: 'MESHLET_CA_CLOSED' });
  });
});
