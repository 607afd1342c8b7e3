import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createRootCa, issueSvid, type CertificateAuthority } from '../../../src/control-plane/identity-service/ca.ts';
import { pemCertificatesToDer } from '../../../src/data-plane/identity/pem.ts';
import { FilesSource } from '../../../src/data-plane/identity/sources/files.ts';
import type { IdentitySnapshot, X509Svid } from '../../../src/data-plane/identity/svid.ts';
import { kubeletWrite } from '../../support/kubelet-volume.ts';
import { causeCodes, nextEvent } from './events.ts';

// An invalid set swapped in is an error event and NEVER replaces the current snapshot; the
// next good set is taken as usual.
describe('files source: invalid sets keep the last good snapshot', () => {
  let root: string;
  let dir: string;
  let ca: CertificateAuthority;
  let good: X509Svid;
  let source: FilesSource;
  let initial: IdentitySnapshot;
  const ID = 'spiffe://example.org/ns/shop/sa/orders';
  const WATCH = { pollMs: 100, debounceMs: 20 };
  const leafSerial = (pem: string) => new X509Certificate(pemCertificatesToDer(pem)[0]!).serialNumber;

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'meshlet-files-'));
    dir = join(root, 'spiffe.io');
    ca = await createRootCa({ trustDomain: 'example.org' });
    good = await issueSvid(ca, { spiffeId: ID });
    await kubeletWrite(dir, { 'tls.crt': good.certChainPem, 'tls.key': good.privateKeyPem, 'ca.crt': ca.bundlePem });
    source = new FilesSource({ dir, ...WATCH });
    initial = await source.start();
  });

  afterEach(async () => {
    await source.close();
    await rm(root, { recursive: true, force: true });
  });

  async function swapInExpectingError(files: Record<string, string>): Promise<Error> {
    const error = nextEvent<Error>((l) => source.onError(l), undefined, 'error event');
    await kubeletWrite(dir, files);
    return error;
  }

  async function thenGoodSetIsTaken(): Promise<void> {
    const rotated = await issueSvid(ca, { spiffeId: ID });
    const update = nextEvent<IdentitySnapshot>((l) => source.onUpdate(l), undefined, 'update');
    await kubeletWrite(dir, { 'tls.crt': rotated.certChainPem, 'tls.key': rotated.privateKeyPem, 'ca.crt': ca.bundlePem });
    expect(leafSerial((await update).svid.certChainPem)).toBe(leafSerial(rotated.certChainPem));
  }

  it('a corrupt key: error event, old snapshot kept, then a good set -> update', async () => {
    const rotated = await issueSvid(ca, { spiffeId: ID });
    const corruptKey = rotated.privateKeyPem.replace(/\n[A-Za-z0-9+/]{20}/, '\n!!!!corrupt!!!!!!!!!');
    const updates: IdentitySnapshot[] = [];
    source.onUpdate((s) => updates.push(s));

    const err = await swapInExpectingError({ 'tls.crt': rotated.certChainPem, 'tls.key': corruptKey, 'ca.crt': ca.bundlePem });

    expect(causeCodes(err)[0]).toBe('FILES_SOURCE_CORRUPT_PEM');
    expect(err.message).toContain(join(dir, 'tls.key'));
    expect(source.current()).toBe(initial);
    expect(updates).toEqual([]);
    await thenGoodSetIsTaken();
  });

  it('a key that is not a key at all (PEM_BAD_PRIVATE_KEY)', async () => {
    const err = await swapInExpectingError({ 'tls.crt': good.certChainPem, 'tls.key': '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n', 'ca.crt': ca.bundlePem });
    expect(causeCodes(err).slice(0, 2)).toEqual(['FILES_SOURCE_INVALID', 'PEM_BAD_PRIVATE_KEY']);
    expect(source.current()).toBe(initial);
    await thenGoodSetIsTaken();
  });

  it('a key that does not match the certificate (PEM_KEY_MISMATCH)', async () => {
    const other = await issueSvid(ca, { spiffeId: ID });
    const err = await swapInExpectingError({ 'tls.crt': other.certChainPem, 'tls.key': good.privateKeyPem, 'ca.crt': ca.bundlePem });
    expect(causeCodes(err).slice(0, 2)).toEqual(['FILES_SOURCE_INVALID', 'PEM_KEY_MISMATCH']);
    expect(source.current()).toBe(initial);
    await thenGoodSetIsTaken();
  });

  it('a half-written certificate (FILES_SOURCE_CORRUPT_PEM)', async () => {
    const other = await issueSvid(ca, { spiffeId: ID });
    const half = other.certChainPem.slice(0, Math.floor(other.certChainPem.length / 2));
    const err = await swapInExpectingError({ 'tls.crt': half, 'tls.key': other.privateKeyPem, 'ca.crt': ca.bundlePem });
    expect(causeCodes(err)[0]).toBe('FILES_SOURCE_CORRUPT_PEM');
    expect(source.current()).toBe(initial);
    await thenGoodSetIsTaken();
  });

  it('a missing file (FILES_SOURCE_MISSING_FILE)', async () => {
    const err = await swapInExpectingError({ 'tls.crt': good.certChainPem, 'ca.crt': ca.bundlePem });
    expect(causeCodes(err)[0]).toBe('FILES_SOURCE_MISSING_FILE');
    expect(err.message).toContain(join(dir, 'tls.key'));
    expect(source.current()).toBe(initial);
    await thenGoodSetIsTaken();
  });

  it('an SVID that does not chain to ca.crt (SVID_UNKNOWN_AUTHORITY)', async () => {
    const stranger = await createRootCa({ trustDomain: 'example.org' });
    const foreign = await issueSvid(stranger, { spiffeId: ID });
    const err = await swapInExpectingError({ 'tls.crt': foreign.certChainPem, 'tls.key': foreign.privateKeyPem, 'ca.crt': ca.bundlePem });
    expect(causeCodes(err).slice(0, 2)).toEqual(['FILES_SOURCE_INVALID', 'SVID_UNKNOWN_AUTHORITY']);
    expect(source.current()).toBe(initial);
    await thenGoodSetIsTaken();
  });

  it('reports the same broken set once, not on every poll', async () => {
    const errors: Error[] = [];
    source.onError((e) => errors.push(e));
    await swapInExpectingError({ 'tls.crt': good.certChainPem, 'ca.crt': ca.bundlePem });
    await new Promise((r) => setTimeout(r, WATCH.pollMs * 5));
    expect(errors).toHaveLength(1);
  });
});
