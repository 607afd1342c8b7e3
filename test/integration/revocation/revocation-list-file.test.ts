import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RevocationListError } from '../../../src/data-plane/identity/revocation/errors.ts';
import { RevocationListFile, type RevocationReload } from '../../../src/data-plane/identity/revocation/revocation-list-file.ts';
import { formatRevocationList } from '../../../src/data-plane/identity/revocation/revocation-list.ts';
import { kubeletWrite } from '../../support/kubelet-volume.ts';
import { eventually } from '../tls/mesh-fixture.ts';

/**
 * The revocation list as a mounted ConfigMap (docs/revocation.md "Reloads"): kubelet's `..data`
 * swap done on disk, picked up by the directory watch or the 1 s poll; a bad list never
 * replaces a good one, and a list that vanishes leaves the last good one in force.
 */
const FRONTEND = 'spiffe://cluster.local/ns/web/sa/frontend';
const ORDERS = 'spiffe://cluster.local/ns/shop/sa/orders';
const KEY = 'revocations.json';

const list = (...ids: string[]): string => formatRevocationList(ids.map((spiffeId) => ({ spiffeId, revokedAt: '2026-12-04T07:00:00Z' })));

let dir: string;
let file: RevocationListFile | undefined;
let reloads: RevocationReload[];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'meshlet-revocations-'));
  reloads = [];
});
afterEach(async () => {
  file?.close();
  file = undefined;
  await rm(dir, { recursive: true, force: true });
});

async function follow(): Promise<RevocationListFile> {
  file = new RevocationListFile({ path: join(dir, KEY) });
  file.onReload((r) => reloads.push(r));
  await file.start();
  return file;
}

describe('RevocationListFile', () => {
  it('loads the mounted list, then follows kubelet swaps of ..data without being asked', async () => {
    await kubeletWrite(dir, { [KEY]: list(FRONTEND) });
    const f = await follow();
    expect(f.has(FRONTEND)).toBe(true);
    expect(f.has(ORDERS)).toBe(false);
    expect(reloads.map((r) => r.result)).toEqual(['ok']);

    await kubeletWrite(dir, { [KEY]: list(ORDERS) });
    await eventually(() => f.has(ORDERS), 'the swapped list to be in force');
    expect(f.has(FRONTEND)).toBe(false);
    const last = reloads.at(-1)!;
    expect(last.result).toBe('ok');
    expect(last.current.addedSince(last.previous)).toEqual([ORDERS]);
    expect(last.current.removedSince(last.previous)).toEqual([FRONTEND]);
  });

  it('keeps the last good list when the new one is malformed, and says why once', async () => {
    await kubeletWrite(dir, { [KEY]: list(FRONTEND) });
    const f = await follow();
    await kubeletWrite(dir, { [KEY]: list(FRONTEND).replace('"spiffe://cluster.local/ns/web/sa/frontend"', '"spiffe://cluster.local/ns/web/sa/"') });
    await eventually(() => reloads.some((r) => r.result === 'rejected'), 'the malformed list to be rejected');
    const rejected = reloads.find((r) => r.result === 'rejected')!;
    expect(rejected.error?.code).toBe('REVOCATION_LIST_INVALID');
    expect(rejected.error?.message).toContain(`${join(dir, KEY)}: revoked[0].spiffeId: invalid SPIFFE ID`);
    expect(rejected.current).toBe(rejected.previous);
    expect(f.has(FRONTEND)).toBe(true);
    // The poll keeps looking, but the same bad file is reported once.
    await f.check();
    await f.check();
    expect(reloads.filter((r) => r.result === 'rejected')).toHaveLength(1);

    // A good list after a bad one applies.
    await kubeletWrite(dir, { [KEY]: list() });
    await eventually(() => !f.has(FRONTEND), 'the empty list to re-admit frontend');
    expect(reloads.at(-1)!.result).toBe('ok');
  });

  it('keeps the last good list when the file disappears (a deleted key must not re-admit everyone)', async () => {
    await kubeletWrite(dir, { [KEY]: list(FRONTEND) });
    const f = await follow();
    await kubeletWrite(dir, { 'other.json': '{}' });
    await eventually(() => reloads.some((r) => r.result === 'rejected'), 'the missing file to be reported');
    expect(reloads.at(-1)!.error?.code).toBe('REVOCATION_LIST_MISSING');
    expect(f.has(FRONTEND)).toBe(true);
  });

  it('starts with nobody revoked when no file is mounted yet, and applies one that appears', async () => {
    const f = await follow();
    expect(reloads.map((r) => r.result)).toEqual(['absent']);
    expect(f.current().size).toBe(0);
    await kubeletWrite(dir, { [KEY]: list(ORDERS) });
    await eventually(() => f.has(ORDERS), 'the list that appeared to be in force');
  });

  it('refuses to start on a file that is there but invalid: the caller must not admit peers it cannot judge', async () => {
    await writeFile(join(dir, KEY), '{"apiVersion":"meshlet.io/v1alpha1","kind":"RevocationList","revoked":{}}');
    file = new RevocationListFile({ path: join(dir, KEY) });
    const err = await file.start().then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(RevocationListError);
    expect((err as RevocationListError).code).toBe('REVOCATION_LIST_INVALID');
    expect((err as RevocationListError).message).toBe(`${join(dir, KEY)}: revoked: must be an array (empty: nobody is revoked)`);
  });

  it('picks up a plain file replaced by rename (what meshlet identity revoke does), through the poll if the watch misses it', async () => {
    await writeFile(join(dir, KEY), list());
    const f = await follow();
    await writeFile(join(dir, 'next.tmp'), list(FRONTEND, ORDERS));
    const { rename } = await import('node:fs/promises');
    await rename(join(dir, 'next.tmp'), join(dir, KEY));
    await eventually(() => f.has(FRONTEND) && f.has(ORDERS), 'the renamed list to be in force');
  });
});
