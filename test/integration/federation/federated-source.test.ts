// The federation directory followed live (FederatedBundles) and merged into an identity source
// (FederatedSvidSource), on a real directory updated the way kubelet updates a ConfigMap
// volume; the fs.watch is backed by the poll, and each refusal is reported once per content.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { issueSvid } from '../../../src/control-plane/identity-service/ca.ts';
import { FEDERATION_REJECT_REASONS, MAX_BUNDLE_FILE_BYTES, readBundleDirectory, type FederationError } from '../../../src/data-plane/identity/federation/bundle-directory.ts';
import { FederatedBundles, type FederationChange } from '../../../src/data-plane/identity/federation/federated-bundles.ts';
import { FederatedSvidSource, withFederation } from '../../../src/data-plane/identity/federation/federated-source.ts';
import { buildTrustBundles } from '../../../src/data-plane/identity/trust-bundle.ts';
import { StaticSvidSource } from '../../../src/data-plane/identity/sources/static.ts';
import type { IdentitySnapshot } from '../../../src/data-plane/identity/svid.ts';
import { kubeletWrite } from '../../support/kubelet-volume.ts';
import { bundleJson, mesh, until, type Mesh } from './fixture.ts';

describe('FederatedBundles and FederatedSvidSource', () => {
  let a: Mesh;
  let b: Mesh;
  let third: Mesh;
  let dir: string;
  const closers: (() => unknown)[] = [];

  beforeAll(async () => {
    [a, b, third] = await Promise.all([mesh('cluster.local'), mesh('partner.example'), mesh('third.example')]);
  });
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'meshlet-federated-bundles-'));
  });
  afterEach(async () => {
    for (const close of closers.splice(0)) await close();
    await rm(dir, { recursive: true, force: true });
  });

  async function ownSnapshot(): Promise<IdentitySnapshot> {
    const svid = await issueSvid(a.issuer, { spiffeId: 'spiffe://cluster.local/ns/shop/sa/orders' });
    return { svid, bundles: buildTrustBundles({ 'cluster.local': a.root.bundlePem }) };
  }

  function follow(options: { pollMs?: number } = {}): { federation: FederatedBundles; changes: FederationChange[]; rejected: FederationError[] } {
    const federation = new FederatedBundles({ dir, ownTrustDomain: 'cluster.local', ...options });
    const changes: FederationChange[] = [];
    const rejected: FederationError[] = [];
    federation.onChange((c) => changes.push(c));
    federation.onRejected((e) => rejected.push(e));
    closers.push(() => federation.close());
    return { federation, changes, rejected };
  }

  it('reads kubelet\'s layout: keys only, never ..data or the timestamped directory', async () => {
    await kubeletWrite(dir, { 'partner.example': bundleJson(b, 1) });
    const read = await readBundleDirectory(dir);
    expect(read.files.map((f) => f.name)).toEqual(['partner.example']);
  });

  it('follows ..data swaps: a domain added, updated, removed, with one change event each', async () => {
    await kubeletWrite(dir, {});
    const { federation, changes } = follow();
    await federation.start();
    expect(federation.current().size).toBe(0);

    await kubeletWrite(dir, { 'partner.example': bundleJson(b, 1) });
    await until(() => changes.length === 1, 'the added domain');
    expect(changes[0]).toEqual({ trustDomains: ['partner.example'], added: ['partner.example'], removed: [], updated: [] });
    expect(federation.current().get('partner.example')).toBe(buildTrustBundles({ x: b.root.bundlePem }).get('x'));

    const rotated = await mesh('partner.example');
    await kubeletWrite(dir, { 'partner.example': bundleJson(rotated, 2), 'third.example.json': bundleJson(third) });
    await until(() => changes.length === 2, 'the update');
    expect(changes[1]).toEqual({ trustDomains: ['partner.example', 'third.example'], added: ['third.example'], removed: [], updated: ['partner.example'] });

    await kubeletWrite(dir, { 'third.example.json': bundleJson(third) });
    await until(() => changes.length === 3, 'the removal');
    expect(changes[2]).toEqual({ trustDomains: ['third.example'], added: [], removed: ['partner.example'], updated: [] });
  });

  it('finds a change by polling that the directory watch cannot see (a key rewritten in place under ..data)', async () => {
    // A write inside the timestamped directory is an event of that subdirectory, not of the
    // watched one: only the poll can find it.
    await kubeletWrite(dir, { 'partner.example': bundleJson(b, 1) });
    const { federation, changes } = follow({ pollMs: 50 });
    await federation.start();
    expect(changes).toEqual([{ trustDomains: ['partner.example'], added: ['partner.example'], removed: [], updated: [] }]);
    const rotated = await mesh('partner.example');
    await writeFile(join(dir, '..data', 'partner.example'), bundleJson(rotated, 2));
    await until(() => changes.length === 2, 'the poll to find the rewritten key');
    expect(changes[1]).toMatchObject({ updated: ['partner.example'] });
    expect(federation.loaded().get('partner.example')!.sequence).toBe(2);
  });

  it('reports a refused file once while its content stays, and again when it changes', async () => {
    await kubeletWrite(dir, { 'partner.example': 'not json' });
    const { federation, changes, rejected } = follow({ pollMs: 50 });
    await federation.start();
    expect(rejected.map((e) => e.reason)).toEqual(['invalid_bundle']);
    // Another key changes (so the directory is read and judged again); the bad file does not.
    await kubeletWrite(dir, { 'partner.example': 'not json', 'third.example': bundleJson(third) });
    await until(() => changes.length === 1, 'third.example');
    expect(rejected).toHaveLength(1);
    await kubeletWrite(dir, { 'partner.example': '{"keys": 3}', 'third.example': bundleJson(third) });
    await until(() => rejected.length === 2, 'the new refusal');
    expect(rejected[1]!.message).toContain('must be a JWK Set');
    // Other bytes with the very same defect are a new refusal too.
    await kubeletWrite(dir, { 'partner.example': '{"keys": 4}', 'third.example': bundleJson(third) });
    await until(() => rejected.length === 3, 'the refusal of the new bytes');
    expect(rejected[2]!.message).toBe(rejected[1]!.message);
  });

  it('refuses a file over the size limit, and a key that is a directory, without reading them as bundles', async () => {
    await writeFile(join(dir, 'partner.example'), Buffer.alloc(MAX_BUNDLE_FILE_BYTES + 1, 0x20));
    await mkdir(join(dir, 'third.example'));
    const { federation, rejected } = follow();
    await federation.start();
    expect(rejected.map((e) => [e.reason, e.code]).sort()).toEqual([
      ['too_large', 'FEDERATION_BUNDLE_TOO_LARGE'],
      ['unreadable', 'FEDERATION_UNREADABLE'],
    ]);
    expect(rejected.find((e) => e.reason === 'too_large')!.message).toBe(`${join(dir, 'partner.example')} is ${MAX_BUNDLE_FILE_BYTES + 1} bytes; a federated bundle is at most ${MAX_BUNDLE_FILE_BYTES} bytes (a ConfigMap's limit)`);
  });

  it('a missing directory is reported (unreadable), trusts nothing, and is picked up once it appears', async () => {
    const missing = join(dir, 'not-yet');
    const federation = new FederatedBundles({ dir: missing, ownTrustDomain: 'cluster.local', pollMs: 50 });
    closers.push(() => federation.close());
    const rejected: FederationError[] = [];
    federation.onRejected((e) => rejected.push(e));
    await federation.start();
    expect(rejected).toHaveLength(1);
    expect(rejected[0]).toMatchObject({ reason: 'unreadable', code: 'FEDERATION_UNREADABLE', file: missing });
    expect(rejected[0]!.message).toBe(`the federation directory ${missing} cannot be listed: ENOENT`);
    expect(federation.current().size).toBe(0);
    await kubeletWrite(missing, { 'partner.example': bundleJson(b, 1) });
    await until(() => federation.current().has('partner.example'), 'the directory to appear');
    expect(rejected).toHaveLength(1);
  });

  it('merges federated bundles beside the source\'s own, never over it, and emits an update on every change', async () => {
    const own = await ownSnapshot();
    const inner = new StaticSvidSource(own);
    await kubeletWrite(dir, { 'partner.example': bundleJson(b, 1) });
    const source = new FederatedSvidSource(inner, new FederatedBundles({ dir, ownTrustDomain: 'cluster.local' }));
    closers.push(() => source.close());
    const updates: IdentitySnapshot[] = [];
    source.onUpdate((s) => updates.push(s));
    const first = await source.start();
    expect(first.svid).toBe(own.svid);
    expect([...first.bundles.keys()].sort()).toEqual(['cluster.local', 'partner.example']);
    expect(first.bundles.get('cluster.local')).toBe(own.bundles.get('cluster.local'));
    expect(source.current()).toBe(first);
    expect(source.kind).toBe('static');

    await kubeletWrite(dir, {});
    await until(() => updates.length === 1, 'the removal to be an update');
    expect([...updates[0]!.bundles.keys()]).toEqual(['cluster.local']);
    expect(updates[0]!.svid).toBe(own.svid);

    // The inner source rotating is passed on with the federated bundles merged in.
    await kubeletWrite(dir, { 'third.example': bundleJson(third) });
    await until(() => updates.length === 2, 'third.example');
    const renewed = await ownSnapshot();
    inner.rotate(renewed);
    expect(updates).toHaveLength(3);
    expect(updates[2]!.svid).toBe(renewed.svid);
    expect([...updates[2]!.bundles.keys()].sort()).toEqual(['cluster.local', 'third.example']);
  });

  it('withFederation: the source as it is when unset; with a directory, metrics at 0 for every reason and a log line per refusal', async () => {
    const inner = new StaticSvidSource(await ownSnapshot());
    const registry = new Registry();
    const logger = pino({ level: 'silent' });
    expect(withFederation(inner, { dir: '', ownTrustDomain: 'cluster.local', registry, logger })).toBe(inner);
    expect(registry.getMetricsAsArray()).toEqual([]);

    const lines: Record<string, unknown>[] = [];
    const capture = pino({ level: 'info' }, new Writable({ write: (chunk: Buffer, _e, cb) => (lines.push(JSON.parse(String(chunk)) as Record<string, unknown>), cb()) }));
    await kubeletWrite(dir, { 'cluster.local': bundleJson(third, 1), 'partner.example': bundleJson(b, 1) });
    const source = withFederation(inner, { dir, ownTrustDomain: 'cluster.local', registry, logger: capture });
    closers.push(() => source.close());
    await source.start();
    const errors = (await registry.getSingleMetric('meshlet_federation_bundle_errors_total')!.get()).values;
    expect(errors.map((v) => v.labels.reason).sort()).toEqual([...FEDERATION_REJECT_REASONS].sort());
    expect(errors.find((v) => v.labels.reason === 'own_trust_domain')!.value).toBe(1);
    expect((await registry.getSingleMetric('meshlet_federation_trust_domains')!.get()).values[0]!.value).toBe(1);
    await until(() => lines.length >= 2, 'the log lines');
    expect(lines.find((l) => l.event === 'federation_bundle_rejected')).toMatchObject({
      level: 40,
      file: join(dir, 'cluster.local'),
      trustDomain: 'cluster.local',
      reason: 'own_trust_domain',
      code: 'FEDERATION_OWN_TRUST_DOMAIN',
      kept: false,
    });
    expect(lines.find((l) => l.event === 'federation_updated')).toMatchObject({ level: 30, trustDomains: ['partner.example'], added: ['partner.example'] });
  });
});
