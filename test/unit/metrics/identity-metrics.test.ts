import { afterEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { createRootCa, issueSvid } from '../../../src/control-plane/identity-service/ca.ts';
import { FilesSource } from '../../../src/data-plane/identity/sources/files.ts';
import { StaticSvidSource } from '../../../src/data-plane/identity/sources/static.ts';
import type { SvidSource } from '../../../src/data-plane/identity/svid.ts';
import { IdentityMetrics } from '../../../src/data-plane/metrics/identity-metrics.ts';
import { kubeletWrite } from '../../support/kubelet-volume.ts';
import { named, scrape, valueOf } from './scrape.ts';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function waitFor(cond: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('identity metrics, following a real files source', () => {
  it('exports expiry and identity, counts a rotation and a failed renewal', async () => {
    const ID = 'spiffe://example.org/ns/shop/sa/orders';
    const root = await mkdtemp(join(tmpdir(), 'meshlet-idm-'));
    cleanups.push(() => rm(root, { recursive: true, force: true }));
    const dir = join(root, 'svid');
    const ca = await createRootCa({ trustDomain: 'example.org' });
    const first = await issueSvid(ca, { spiffeId: ID, ttlMs: 3_600_000 });
    await kubeletWrite(dir, { 'tls.crt': first.certChainPem, 'tls.key': first.privateKeyPem, 'ca.crt': ca.bundlePem });
    const source = new FilesSource({ dir, pollMs: 100, debounceMs: 20 });
    cleanups.push(() => source.close());
    await source.start();

    const registry = new Registry();
    const m = new IdentityMetrics(registry);
    const detach = m.follow(source);
    cleanups.push(detach);
    let samples = await scrape(registry);
    expect(valueOf(samples, 'meshlet_identity_cert_expiration_timestamp_seconds')).toBe(first.notAfter.getTime() / 1000);
    expect(valueOf(samples, 'meshlet_identity_info', { spiffe_id: ID, source: 'files' })).toBe(1);
    expect(valueOf(samples, 'meshlet_identity_rotations_total')).toBe(0);
    expect(valueOf(samples, 'meshlet_identity_last_rotation_failure_timestamp_seconds')).toBe(0);

    const second = await issueSvid(ca, { spiffeId: ID, ttlMs: 7_200_000 });
    await kubeletWrite(dir, { 'tls.crt': second.certChainPem, 'tls.key': second.privateKeyPem, 'ca.crt': ca.bundlePem });
    await waitFor(async () => valueOf(await scrape(registry), 'meshlet_identity_rotations_total') === 1, 'the rotation');
    samples = await scrape(registry);
    expect(valueOf(samples, 'meshlet_identity_cert_expiration_timestamp_seconds')).toBe(second.notAfter.getTime() / 1000);
    expect(named(samples, 'meshlet_identity_info')).toHaveLength(1);

    const before = Date.now() / 1000;
    await kubeletWrite(dir, { 'tls.crt': 'not a certificate', 'tls.key': second.privateKeyPem, 'ca.crt': ca.bundlePem });
    await waitFor(async () => (valueOf(await scrape(registry), 'meshlet_identity_rotation_failures_total') ?? 0) >= 1, 'the failure');
    samples = await scrape(registry);
    expect(valueOf(samples, 'meshlet_identity_last_rotation_failure_timestamp_seconds')).toBeGreaterThanOrEqual(Math.floor(before));
    // The failure changes nothing else: same expiry, still one rotation.
    expect(valueOf(samples, 'meshlet_identity_cert_expiration_timestamp_seconds')).toBe(second.notAfter.getTime() / 1000);
    expect(valueOf(samples, 'meshlet_identity_rotations_total')).toBe(1);
  });
});

describe('identity metrics, following before start()', () => {
  it('sees the first snapshot at the next scrape even when the source never announces it', async () => {
    const ca = await createRootCa({ trustDomain: 'example.org' });
    const svid = await issueSvid(ca, { spiffeId: 'spiffe://example.org/ns/a/sa/b' });
    const { bundlePem, ...x509 } = svid;
    const inner = new StaticSvidSource({ svid: x509, bundles: new Map([['example.org', bundlePem]]) });
    // Like the network sources: nothing before start(), and start() resolves with the first
    // snapshot without announcing it to onUpdate listeners.
    let started = false;
    const source: SvidSource = {
      kind: 'quiet',
      start: async () => ((started = true), inner.start()),
      current: () => (started ? inner.current() : undefined),
      onUpdate: (l) => inner.onUpdate(l),
      onError: (l) => inner.onError(l),
      close: () => inner.close(),
    };
    const registry = new Registry();
    const m = new IdentityMetrics(registry);
    cleanups.push(m.follow(source));
    expect(valueOf(await scrape(registry), 'meshlet_identity_cert_expiration_timestamp_seconds')).toBe(0);
    await source.start();
    const samples = await scrape(registry);
    expect(valueOf(samples, 'meshlet_identity_cert_expiration_timestamp_seconds')).toBe(svid.notAfter.getTime() / 1000);
    expect(valueOf(samples, 'meshlet_identity_info', { spiffe_id: 'spiffe://example.org/ns/a/sa/b', source: 'quiet' })).toBe(1);
    expect(valueOf(samples, 'meshlet_identity_rotations_total')).toBe(0);
    // A rotation announced by onUpdate is counted once, however many scrapes follow.
    const next = await issueSvid(ca, { spiffeId: 'spiffe://example.org/ns/a/sa/b' });
    const { bundlePem: _b, ...nextX509 } = next;
    inner.rotate({ svid: nextX509, bundles: new Map([['example.org', bundlePem]]) });
    await scrape(registry);
    const after = await scrape(registry);
    expect(valueOf(after, 'meshlet_identity_rotations_total')).toBe(1);
    expect(valueOf(after, 'meshlet_identity_cert_expiration_timestamp_seconds')).toBe(next.notAfter.getTime() / 1000);
  });
});
