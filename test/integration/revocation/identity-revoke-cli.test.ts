import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { parseRevocationList } from '../../../src/data-plane/identity/revocation/revocation-list.ts';
import { run } from '../../unit/cli/run.ts';

/**
 * `meshlet identity revoke | unrevoke` (docs/revocation.md "Revoking"): exit codes, what the
 * file holds afterwards (a list every reader accepts), idempotence, an atomic replace that
 * leaves no temporary file, a malformed list never overwritten, and the ConfigMap output.
 */
const FRONTEND = 'spiffe://cluster.local/ns/web/sa/frontend';
const ORDERS = 'spiffe://cluster.local/ns/shop/sa/orders';
let dir: string;
let file: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'meshlet-revoke-cli-'));
  file = join(dir, 'revocations.json');
});
afterEach(() => rm(dir, { recursive: true, force: true }));

const entries = async () => parseRevocationList(await readFile(file)).entries;

describe('meshlet identity revoke', () => {
  it('creates the list, adds IDs with their date and reason, is idempotent, and leaves no temporary file', async () => {
    const first = await run('identity', 'revoke', FRONTEND, '--list', file, '--reason', 'key leaked');
    expect(first).toMatchObject({ code: 0, stderr: '' });
    expect(first.stdout).toBe(`revoked ${FRONTEND} in ${file} (1 revoked)\n`);
    const [entry] = await entries();
    expect(entry!.spiffeId).toBe(FRONTEND);
    expect(entry!.reason).toBe('key leaked');
    expect(entry!.revokedAt).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);

    expect((await run('identity', 'revoke', ORDERS, '--list', file)).code).toBe(0);
    const before = await readFile(file, 'utf8');
    const again = await run('identity', 'revoke', FRONTEND, '--list', file, '--reason', 'another reason');
    expect(again.code).toBe(0);
    expect(again.stdout).toBe(`${FRONTEND} was already revoked; unchanged in ${file} (2 revoked)\n`);
    expect(await readFile(file, 'utf8')).toBe(before);
    expect((await entries()).map((e) => e.spiffeId)).toEqual([FRONTEND, ORDERS]);
    expect(await readdir(dir)).toEqual(['revocations.json']);
  });

  it('refuses an invalid SPIFFE ID as a usage error (exit 2) and writes nothing', async () => {
    for (const bad of ['spiffe://Cluster.local/ns/web/sa/frontend', 'frontend', 'spiffe://cluster.local']) {
      const r = await run('identity', 'revoke', bad, '--list', file);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('meshlet identity revoke: invalid SPIFFE ID');
      expect(r.stderr).toContain('Usage: meshlet identity revoke SPIFFE_ID --list FILE');
    }
    expect(await readdir(dir)).toEqual([]);
  });

  it('needs --list and exactly one ID (exit 2)', async () => {
    expect((await run('identity', 'revoke', FRONTEND)).stderr).toContain('missing required flag --list');
    expect((await run('identity', 'revoke', '--list', file)).stderr).toContain('missing SPIFFE_ID');
    const two = await run('identity', 'revoke', FRONTEND, ORDERS, '--list', file);
    expect(two.code).toBe(2);
    expect(two.stderr).toContain('takes one SPIFFE_ID, got 2');
  });

  it('refuses to touch a malformed list (exit 1, the file unchanged)', async () => {
    const broken = '{"apiVersion":"meshlet.io/v1alpha1","kind":"RevocationList","revoked":[{"spiffeId":"x"}]}';
    await writeFile(file, broken);
    const r = await run('identity', 'revoke', FRONTEND, '--list', file);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`meshlet identity revoke: REVOCATION_LIST_INVALID: ${file}: revoked[0].spiffeId: invalid SPIFFE ID "x": the scheme must be exactly "spiffe://" (fix or remove the file; it was not changed)\n`);
    expect(await readFile(file, 'utf8')).toBe(broken);
  });

  it('--configmap prints the ConfigMap of each namespace (YAML for kubectl apply -f -) and does not write the file', async () => {
    await run('identity', 'revoke', ORDERS, '--list', file);
    const before = await readFile(file, 'utf8');
    const r = await run('identity', 'revoke', FRONTEND, '--list', file, '--configmap', 'meshlet-system', '--configmap', 'shop');
    expect(r.code).toBe(0);
    expect(await readFile(file, 'utf8')).toBe(before);
    const docs = parseAllDocuments(r.stdout).map((d) => d.toJS() as { apiVersion: string; kind: string; metadata: { name: string; namespace: string }; data: Record<string, string> });
    expect(docs.map((d) => [d.apiVersion, d.kind, d.metadata.name, d.metadata.namespace])).toEqual([
      ['v1', 'ConfigMap', 'meshlet-revocations', 'meshlet-system'],
      ['v1', 'ConfigMap', 'meshlet-revocations', 'shop'],
    ]);
    for (const d of docs) {
      expect(Object.keys(d.data)).toEqual(['revocations.json']);
      expect(parseRevocationList(d.data['revocations.json']!).entries.map((e) => e.spiffeId)).toEqual([ORDERS, FRONTEND]);
    }
    const badNs = await run('identity', 'revoke', FRONTEND, '--list', file, '--configmap', 'Shop');
    expect(badNs.code).toBe(2);
    expect(badNs.stderr).toContain('--configmap "Shop": not a namespace name');
  });
});

describe('meshlet identity unrevoke', () => {
  it('removes the ID (idempotent), keeping the others', async () => {
    await run('identity', 'revoke', FRONTEND, '--list', file);
    await run('identity', 'revoke', ORDERS, '--list', file);
    const r = await run('identity', 'unrevoke', FRONTEND, '--list', file);
    expect(r).toMatchObject({ code: 0, stdout: `unrevoked ${FRONTEND} in ${file} (1 revoked)\n` });
    expect((await entries()).map((e) => e.spiffeId)).toEqual([ORDERS]);
    const again = await run('identity', 'unrevoke', FRONTEND, '--list', file);
    expect(again).toMatchObject({ code: 0, stdout: `${FRONTEND} was not revoked; unchanged in ${file} (1 revoked)\n` });
    expect((await run('identity', 'unrevoke', 'not-an-id', '--list', file)).code).toBe(2);
  });
});

describe('meshlet identity (the group)', () => {
  it('has --help for each subcommand; `meshlet identity --help` is still the service\'s help', async () => {
    const revoke = await run('identity', 'revoke', '--help');
    expect(revoke.code).toBe(0);
    expect(revoke.stdout).toContain('Usage: meshlet identity revoke SPIFFE_ID --list FILE [--reason TEXT] [--configmap NAMESPACE]...');
    const unrevoke = await run('identity', 'unrevoke', '--help');
    expect(unrevoke.stdout).toContain('Usage: meshlet identity unrevoke SPIFFE_ID --list FILE');
    const service = await run('identity', '--help');
    expect(service.code).toBe(0);
    expect(service.stdout).toContain('Runs the in-cluster mesh CA');
    expect(service.stdout).toContain('MESHLET_IDENTITY_REVOCATION_LIST');
  });

  it('`meshlet identity` with an unknown word still runs the service command, which refuses the argument (exit 2)', async () => {
    const r = await run('identity', 'revokee');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unexpected argument "revokee"');
  });
});
