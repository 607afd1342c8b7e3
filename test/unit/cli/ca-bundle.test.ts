// `meshlet ca bundle`: a meshlet CA's roots as the SPIFFE bundle another mesh's federation
// directory takes (issue 16 item 5: two meshes' CAs, one of them meshlet's own).
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { judgeBundleDirectory, readBundleDirectory } from '../../../src/data-plane/identity/federation/bundle-directory.ts';
import { parseSpiffeBundle } from '../../../src/data-plane/identity/trust-bundle.ts';
import { run } from './run.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'meshlet-ca-bundle-'));
  expect((await run('ca', 'init', '--trust-domain', 'partner.example', '--out', join(dir, 'partner-ca'))).code).toBe(0);
  expect((await run('ca', 'init', '--intermediate-of', join(dir, 'partner-ca'), '--out', join(dir, 'partner-int'))).code).toBe(0);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('meshlet ca bundle', () => {
  it("prints the CA's root as a SPIFFE bundle that another mesh's federation directory accepts", async () => {
    const r = await run('ca', 'bundle', '--ca', join(dir, 'partner-ca'));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe("SPIFFE bundle of trust domain partner.example (1 root): store it as key partner.example.json of the other mesh's meshlet-federation ConfigMap\n");
    const root = new X509Certificate(await readFile(join(dir, 'partner-ca', 'ca.crt')));
    const bundle = parseSpiffeBundle(r.stdout);
    expect(new X509Certificate(bundle.x509AuthoritiesPem).raw.equals(root.raw)).toBe(true);
    // Default sequence: the newest root's notBefore, in Unix seconds.
    expect(bundle.sequence).toBe(Math.floor(new Date(root.validFrom).getTime() / 1000));
    expect(bundle.refreshHintSeconds).toBeUndefined();

    const federation = join(dir, 'federation');
    await mkdir(federation);
    await writeFile(join(federation, 'partner.example.json'), r.stdout);
    const judged = judgeBundleDirectory(await readBundleDirectory(federation), new Map(), 'cluster.local');
    expect(judged.rejected).toEqual([]);
    expect([...judged.bundles.keys()]).toEqual(['partner.example']);
  });

  it('an intermediate CA exports its root (bundle.crt), not itself; never reads the key', async () => {
    await rm(join(dir, 'partner-int', 'ca.key'));
    const r = await run('ca', 'bundle', '--ca', join(dir, 'partner-int'));
    expect(r.code, r.stderr).toBe(0);
    const root = new X509Certificate(await readFile(join(dir, 'partner-ca', 'ca.crt')));
    expect(new X509Certificate(parseSpiffeBundle(r.stdout).x509AuthoritiesPem).raw.equals(root.raw)).toBe(true);
  });

  it('--sequence and --refresh-hint are written as given', async () => {
    const r = await run('ca', 'bundle', '--ca', join(dir, 'partner-ca'), '--sequence', '42', '--refresh-hint', '5m');
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout) as { spiffe_sequence: number; spiffe_refresh_hint: number; keys: Array<{ use: string }> };
    expect([doc.spiffe_sequence, doc.spiffe_refresh_hint, doc.keys.map((k) => k.use)]).toEqual([42, 300, ['x509-svid']]);
  });

  it('bad flag values are usage errors (exit 2); a missing CA is one coded line (exit 1), nothing on stdout', async () => {
    for (const args of [['--sequence', '-1'], ['--sequence', '1.5'], ['--refresh-hint', '1500ms'], ['--refresh-hint', 'soon']]) {
      const r = await run('ca', 'bundle', '--ca', join(dir, 'partner-ca'), ...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stdout).toBe('');
    }
    const missing = await run('ca', 'bundle', '--ca', join(dir, 'nowhere'));
    expect(missing.code).toBe(1);
    expect(missing.stdout).toBe('');
    expect(missing.stderr).toMatch(/^meshlet ca bundle: CA_FILE_MISSING: .*nowhere\/ca\.crt does not exist/);
    expect(missing.stderr).not.toMatch(/\n\s+at /);
    expect((await run('ca', 'bundle')).code).toBe(2);
  });
});
