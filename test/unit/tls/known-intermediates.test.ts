import { X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createIntermediateCa, createRootCa, issueSvid } from '../../../src/control-plane/identity-service/ca.ts';
import { KnownIntermediates } from '../../../src/data-plane/tls/known-intermediates.ts';
import { pemCertificatesToDer } from '../../../src/data-plane/identity/pem.ts';

async function chainOf(issuer: Awaited<ReturnType<typeof createIntermediateCa>>, path: string): Promise<Buffer[]> {
  return pemCertificatesToDer((await issueSvid(issuer, { spiffeId: `spiffe://cluster.local${path}` })).certChainPem);
}

describe('KnownIntermediates: linking a resumed caller\'s leaf to its intermediates again', () => {
  it('completes a leaf with the intermediate that issued it', async () => {
    const root = await createRootCa({ trustDomain: 'cluster.local' });
    const intermediate = await createIntermediateCa(root);
    const other = await createIntermediateCa(root);
    const seen = await chainOf(intermediate, '/ns/shop/sa/frontend');
    expect(seen).toHaveLength(2);
    const pool = new KnownIntermediates();
    const leafOnly = [(await chainOf(intermediate, '/ns/shop/sa/billing'))[0]!];
    expect(pool.complete(leafOnly, 8)).toEqual(leafOnly); // nothing learnt yet

    pool.learn(await chainOf(other, '/ns/shop/sa/x'));
    pool.learn(seen);
    expect(pool.size).toBe(2);
    const completed = pool.complete(leafOnly, 8);
    expect(completed).toHaveLength(2);
    expect(completed[1]!.equals(seen[1]!)).toBe(true);
    expect(new X509Certificate(completed[0]!).checkIssued(new X509Certificate(completed[1]!))).toBe(true);
    // A leaf of an intermediate it never saw stays as it is.
    const stranger = [(await chainOf(await createIntermediateCa(root), '/ns/shop/sa/y'))[0]!];
    expect(pool.complete(stranger, 8)).toEqual(stranger);
  });

  it('stays within its size', async () => {
    const root = await createRootCa({ trustDomain: 'cluster.local' });
    const pool = new KnownIntermediates(2);
    for (let i = 0; i < 4; i++) pool.learn(await chainOf(await createIntermediateCa(root), `/ns/shop/sa/s${i}`));
    expect(pool.size).toBe(2);
  });
});
