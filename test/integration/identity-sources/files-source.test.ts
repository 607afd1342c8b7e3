import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createIntermediateCa, createRootCa, issueSvid, type CertificateAuthority } from '../../../src/control-plane/identity-service/ca.ts';
import { pemCertificatesToDer } from '../../../src/data-plane/identity/pem.ts';
import { FilesSource } from '../../../src/data-plane/identity/sources/files.ts';
import type { IdentitySnapshot, X509Svid } from '../../../src/data-plane/identity/svid.ts';
import { toSpiffeBundle } from '../../../src/data-plane/identity/trust-bundle.ts';
import { kubeletWrite } from '../../support/kubelet-volume.ts';
import { causeCodes, nextEvent } from './events.ts';

// The files source reads what cert-manager csi-driver-spiffe (or a Secret) mounts, written by
// kubelet's atomic `..data` swap, which test/support/kubelet-volume.ts performs for real.
describe('files source: loading and rotation', () => {
  let root: string;
  let dir: string;
  let ca: CertificateAuthority;
  let source: FilesSource | undefined;
  const ID = 'spiffe://example.org/ns/shop/sa/orders';
  // Short poll and debounce: the tests wait for events, these only make them come sooner.
  const WATCH = { pollMs: 100, debounceMs: 20 };

  const volume = (svid: X509Svid, bundlePem = ca.bundlePem) => ({ 'tls.crt': svid.certChainPem, 'tls.key': svid.privateKeyPem, 'ca.crt': bundlePem });
  const leafSerial = (pem: string) => new X509Certificate(pemCertificatesToDer(pem)[0]!).serialNumber;

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'meshlet-files-'));
    dir = join(root, 'spiffe.io');
    ca = await createRootCa({ trustDomain: 'example.org' });
  });

  afterEach(async () => {
    await source?.close();
    source = undefined;
    await rm(root, { recursive: true, force: true });
  });

  it('loads tls.crt, tls.key and ca.crt from the mounted directory', async () => {
    const svid = await issueSvid(ca, { spiffeId: ID });
    await kubeletWrite(dir, volume(svid));
    source = new FilesSource({ dir, ...WATCH });

    const snapshot = await source.start();

    expect(snapshot.svid.spiffeId.id).toBe(ID);
    expect(pemCertificatesToDer(snapshot.svid.certChainPem)).toEqual(pemCertificatesToDer(svid.certChainPem));
    expect(createPrivateKey(snapshot.svid.privateKeyPem).export({ format: 'der', type: 'pkcs8' })).toEqual(createPrivateKey(svid.privateKeyPem).export({ format: 'der', type: 'pkcs8' }));
    expect(snapshot.svid.notAfter.getTime()).toBe(svid.notAfter.getTime());
    expect([...snapshot.bundles.keys()]).toEqual(['example.org']);
    expect(pemCertificatesToDer(snapshot.bundles.get('example.org')!)).toEqual(pemCertificatesToDer(ca.bundlePem));
    expect(source.current()).toBe(snapshot);
  });

  it('emits one update with the new SVID when kubelet swaps in a rotated set', async () => {
    const first = await issueSvid(ca, { spiffeId: ID });
    await kubeletWrite(dir, volume(first));
    source = new FilesSource({ dir, ...WATCH });
    const initial = await source.start();
    const updates: IdentitySnapshot[] = [];
    source.onUpdate((s) => updates.push(s));
    const errors: Error[] = [];
    source.onError((e) => errors.push(e));

    // Let the safety poll run over unchanged files a few times: it must not emit anything.
    await new Promise((r) => setTimeout(r, WATCH.pollMs * 4));
    expect(updates).toEqual([]);

    const rotated = await issueSvid(ca, { spiffeId: ID });
    const update = nextEvent<IdentitySnapshot>((l) => source!.onUpdate(l), undefined, 'update');
    await kubeletWrite(dir, volume(rotated));
    const next = await update;

    expect(leafSerial(next.svid.certChainPem)).toBe(leafSerial(rotated.certChainPem));
    expect(leafSerial(next.svid.certChainPem)).not.toBe(leafSerial(initial.svid.certChainPem));
    expect(source.current()).toBe(next);
    await new Promise((r) => setTimeout(r, WATCH.pollMs * 4));
    expect(updates).toEqual([next]);
    expect(errors).toEqual([]);
  });

  it('accepts a chain with an intermediate, a SEC1 "EC PRIVATE KEY" and a SPIFFE bundle (JSON) as ca.crt', async () => {
    const intermediate = await createIntermediateCa(ca);
    const svid = await issueSvid(intermediate, { spiffeId: ID });
    const sec1 = createPrivateKey(svid.privateKeyPem).export({ format: 'pem', type: 'sec1' }) as string;
    await kubeletWrite(dir, { 'tls.crt': svid.certChainPem, 'tls.key': sec1, 'ca.crt': JSON.stringify(toSpiffeBundle(ca.bundlePem)) });
    source = new FilesSource({ dir, ...WATCH });

    const snapshot = await source.start();

    expect(sec1).toMatch(/BEGIN EC PRIVATE KEY/);
    expect(snapshot.svid.privateKeyPem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect(pemCertificatesToDer(snapshot.svid.certChainPem)).toHaveLength(2);
    expect(pemCertificatesToDer(snapshot.bundles.get('example.org')!)).toEqual(pemCertificatesToDer(ca.bundlePem));
  });

  it('reads configured file names, e.g. the output of `meshlet ca issue`', async () => {
    const svid = await issueSvid(ca, { spiffeId: ID });
    await kubeletWrite(dir, { 'svid.crt': svid.certChainPem, 'svid.key': svid.privateKeyPem, 'bundle.crt': ca.bundlePem });
    source = new FilesSource({ dir, certFile: 'svid.crt', keyFile: 'svid.key', bundleFile: join(dir, 'bundle.crt'), ...WATCH });
    expect((await source.start()).svid.spiffeId.id).toBe(ID);
  });

  it('start() waits for files that are mounted after it was called', async () => {
    source = new FilesSource({ dir, ...WATCH });
    const started = source.start();
    await nextEvent<Error>((l) => source!.onError(l), undefined, 'missing-file error');
    await kubeletWrite(dir, volume(await issueSvid(ca, { spiffeId: ID })));
    expect((await started).svid.spiffeId.id).toBe(ID);
  });

  it('refuses impossible options with a coded error', () => {
    expect(() => new FilesSource({ dir, startTimeoutMs: -5 })).toThrow(expect.objectContaining({ code: 'FILES_SOURCE_BAD_OPTION' }));
    expect(() => new FilesSource({ dir, pollMs: Number.NaN })).toThrow(expect.objectContaining({ code: 'FILES_SOURCE_BAD_OPTION' }));
  });

  it('start() rejects with FILES_SOURCE_START_TIMEOUT when the files never appear', async () => {
    source = new FilesSource({ dir, ...WATCH, startTimeoutMs: 300 });
    const err = await source.start().then(() => undefined, (e: unknown) => e);
    expect(causeCodes(err)).toEqual(['FILES_SOURCE_START_TIMEOUT', 'FILES_SOURCE_MISSING_FILE', 'ENOENT']);
    expect((err as Error).message).toContain(join(dir, 'tls.crt'));
  });
});
