// The publish path (docs/revocation.md "Learning the list from the identity service"): a real
// identity service (TLS gRPC on loopback, TokenReview against the API server stand-in) serves the
// list it enforces over `Revocations`; the sidecar's meshlet-ca source polls it over the channel
// it already has, with its projected token, and the feed keeps the last good list on every failure.
import { status } from '@grpc/grpc-js';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { CertificateAuthority } from '../../../src/control-plane/identity-service/ca.ts';
import { TOKEN_TRUST_MS } from '../../../src/control-plane/identity-service/revocations.ts';
import { TokenReviewAuthenticator } from '../../../src/control-plane/identity-service/token/token-review.ts';
import { CaRevocationFeed } from '../../../src/data-plane/identity/revocation/ca-revocation-feed.ts';
import { RevocationListError } from '../../../src/data-plane/identity/revocation/errors.ts';
import { RevocationListFile, type RevocationReload } from '../../../src/data-plane/identity/revocation/revocation-list-file.ts';
import { formatRevocationList } from '../../../src/data-plane/identity/revocation/revocation-list.ts';
import { CertifyCallError, MeshletCaSource } from '../../../src/data-plane/identity/sources/meshlet-ca.ts';
import { kubeletWrite } from '../../support/kubelet-volume.ts';
import { AUDIENCE, issueOpaqueToken, makeCa, SERVER_ID, startFakeApiServer, startIdentityService, tempDir, TRUST_DOMAIN, waitFor, type FakeApiServer } from '../identity-service/support.ts';

const ORDERS = `spiffe://${TRUST_DOMAIN}/ns/shop/sa/orders`;
const BILLING = `spiffe://${TRUST_DOMAIN}/ns/shop/sa/billing`;
const KEY = 'revocations.json';
const list = (...ids: string[]): string => formatRevocationList(ids.map((spiffeId) => ({ spiffeId, revokedAt: '2026-12-04T07:00:00Z' })));

let root: CertificateAuthority;
let ca: CertificateAuthority;
let api: FakeApiServer;
let authenticator: TokenReviewAuthenticator;
let dir: string;
let cleanupDir: () => Promise<void>;
let tokenPath: string;
const toClose: { close(): unknown }[] = [];

beforeAll(async () => {
  ({ root, ca } = await makeCa());
  api = await startFakeApiServer();
  authenticator = new TokenReviewAuthenticator({ apiServerUrl: api.url, caPem: api.caPem, credentialTokenPath: api.credentialPath, audience: AUDIENCE });
  ({ dir, cleanup: cleanupDir } = await tempDir());
  tokenPath = join(dir, 'token');
});
afterEach(async () => {
  for (const c of toClose.splice(0).reverse()) await c.close();
});
afterAll(async () => {
  await authenticator?.close();
  await api?.close();
  await cleanupDir?.();
});

/** A real identity service enforcing (and publishing) the list in `listDir`, and a started meshlet-ca source talking to it. */
async function serviceAndSource(listDir: string | undefined): Promise<{ source: MeshletCaSource; file: RevocationListFile | undefined }> {
  await writeFile(tokenPath, issueOpaqueToken(api, { namespace: 'web', serviceAccount: 'frontend', audiences: [AUDIENCE] }));
  let file: RevocationListFile | undefined;
  if (listDir !== undefined) {
    file = new RevocationListFile({ path: join(listDir, KEY), pollMs: 100 });
    await file.start();
    toClose.push(file);
  }
  const svc = await startIdentityService(ca, authenticator, file ? { revoked: file } : {});
  toClose.push(svc);
  const source = new MeshletCaSource({ address: svc.address, trustDomain: TRUST_DOMAIN, rootsPem: root.bundlePem, tokenPath, server: { spiffeId: SERVER_ID }, startTimeoutMs: 30_000 });
  toClose.push(source);
  await source.start();
  return { source, file };
}

describe('Revocations, polled by the meshlet-ca source', () => {
  it('delivers the list the service enforces, then each change, with one TokenReview for many polls', async () => {
    const listDir = join(dir, 'list-a');
    await kubeletWrite(listDir, { [KEY]: list(ORDERS) });
    const { source } = await serviceAndSource(listDir);
    const feed = new CaRevocationFeed({ fetcher: source, pollMs: 50 });
    toClose.push(feed);
    const reloads: RevocationReload[] = [];
    feed.onReload((r) => reloads.push(r));
    await feed.start();
    expect(feed.has(ORDERS)).toBe(true);
    const reviewsAfterStart = api.reviews.length;

    await kubeletWrite(listDir, { [KEY]: list(ORDERS, BILLING) });
    await waitFor(() => feed.has(BILLING), 'the sidecar to learn the new list');
    expect(reloads.map((r) => r.result)).toEqual(['ok', 'ok']);
    expect(reloads[1]!.current.addedSince(reloads[1]!.previous)).toEqual([BILLING]);
    // Unchanged lists are not sent again, and the token is trusted for TOKEN_TRUST_MS: no new TokenReview.
    await feed.poll();
    await feed.poll();
    expect(reloads).toHaveLength(2);
    expect(TOKEN_TRUST_MS).toBe(300_000);
    expect(api.reviews.length).toBe(reviewsAfterStart);
  });

  it('keeps the last good list when the service cannot be asked (a token it refuses), reporting it once', async () => {
    const listDir = join(dir, 'list-b');
    await kubeletWrite(listDir, { [KEY]: list(ORDERS) });
    const { source } = await serviceAndSource(listDir);
    const feed = new CaRevocationFeed({ fetcher: source, pollMs: 60_000 });
    toClose.push(feed);
    const reloads: RevocationReload[] = [];
    feed.onReload((r) => reloads.push(r));
    await feed.start();
    await writeFile(tokenPath, 'not-a-token-the-cluster-issued');
    await feed.poll();
    await feed.poll();
    expect(reloads.map((r) => r.result)).toEqual(['ok', 'rejected']);
    const error = reloads[1]!.error!;
    expect(error.code).toBe('REVOCATION_LIST_UNREADABLE');
    expect(((error.cause as CertifyCallError).grpcStatus)).toBe(status.UNAUTHENTICATED);
    expect(error.message).toContain('Revocations at');
    expect(feed.has(ORDERS)).toBe(true);
  });

  it('starts against a service that publishes no list: nobody revoked (as a mounted list not yet written), nothing reported on polls', async () => {
    const { source } = await serviceAndSource(undefined);
    const feed = new CaRevocationFeed({ fetcher: source });
    toClose.push(feed);
    const reloads: RevocationReload[] = [];
    feed.onReload((r) => reloads.push(r));
    const set = await feed.start();
    expect(set.size).toBe(0);
    expect(feed.has(ORDERS)).toBe(false);
    await feed.poll();
    await feed.poll();
    expect(reloads.map((r) => r.result)).toEqual(['absent']);
  });
});
