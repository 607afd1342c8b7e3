import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertKeyMatchesCertificate, parseCertificatesPem, parsePrivateKeyPem } from '../../../src/data-plane/identity/pem.ts';
import { verifyX509Svid } from '../../../src/data-plane/identity/svid-verify.ts';
import { run } from '../cli/run.ts';

const TD = 'cli.example';
const ID = `spiffe://${TD}/ns/default/sa/web`;
let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'meshlet-ca-cli-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const text = (path: string) => readFile(path, 'utf8');
const mode = async (path: string) => (await stat(path)).mode & 0o777;

describe('meshlet ca init / ca issue', () => {
  it('init writes a root CA; issue writes svid.crt, svid.key (0600), bundle.crt that verify', async () => {
    const caDir = join(tmp, 'root');
    const init = await run('ca', 'init', '--trust-domain', TD, '--out', caDir);
    expect(init).toMatchObject({ code: 0, stderr: '' });
    expect(init.stdout).toContain(`root CA for trust domain ${TD}`);
    expect(await mode(join(caDir, 'ca.key'))).toBe(0o600);
    const caCert = new X509Certificate(await text(join(caDir, 'ca.crt')));
    expect(caCert.ca).toBe(true);
    assertKeyMatchesCertificate(parsePrivateKeyPem(await text(join(caDir, 'ca.key'))), caCert);
    // Default CA lifetime 8760 h.
    expect(caCert.validToDate.getTime() - Date.now()).toBeGreaterThan(8759 * 3600_000);

    const out = join(tmp, 'svid');
    const issue = await run('ca', 'issue', '--ca', caDir, '--spiffe-id', ID, '--out', out, '--ttl', '2h');
    expect(issue).toMatchObject({ code: 0, stderr: '' });
    expect(issue.stdout).toContain(ID);
    expect(await mode(join(out, 'svid.key'))).toBe(0o600);
    const chain = parseCertificatesPem(await text(join(out, 'svid.crt')));
    expect(chain).toHaveLength(1);
    assertKeyMatchesCertificate(parsePrivateKeyPem(await text(join(out, 'svid.key'))), chain[0]!);
    expect(await text(join(out, 'svid.key'))).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    const lifetime = chain[0]!.validToDate.getTime() - chain[0]!.validFromDate.getTime();
    expect(lifetime).toBe(2 * 3600_000 + 60_000); // 2 h plus the clock-skew backdate
    const bundles = new Map([[TD, await text(join(out, 'bundle.crt'))]]);
    expect(verifyX509Svid(chain.map((c) => c.raw), bundles).spiffeId.id).toBe(ID);
  });

  it('init --intermediate-of makes an intermediate; its SVIDs chain leaf + intermediate to the root bundle', async () => {
    const rootDir = join(tmp, 'offline-root');
    const intDir = join(tmp, 'cluster-intermediate');
    expect((await run('ca', 'init', '--trust-domain', TD, '--out', rootDir, '--ttl', '3650d')).code).toBe(0);
    const init = await run('ca', 'init', '--intermediate-of', rootDir, '--out', intDir, '--ttl', '90d');
    expect(init.code).toBe(0);
    expect(init.stdout).toContain('intermediate CA');
    expect(await text(join(intDir, 'bundle.crt'))).toBe(await text(join(rootDir, 'ca.crt')));
    expect(await text(join(intDir, 'chain.crt'))).toBe(await text(join(intDir, 'ca.crt')));

    const out = join(tmp, 'svid-via-intermediate');
    expect((await run('ca', 'issue', '--ca', intDir, '--spiffe-id', ID, '--out', out)).code).toBe(0);
    const chain = parseCertificatesPem(await text(join(out, 'svid.crt')));
    expect(chain).toHaveLength(2);
    expect(chain[1]!.raw.equals(new X509Certificate(await text(join(intDir, 'ca.crt'))).raw)).toBe(true);
    const bundles = new Map([[TD, await text(join(out, 'bundle.crt'))]]);
    expect(verifyX509Svid(chain.map((c) => c.raw), bundles).spiffeId.id).toBe(ID);
    // Default SVID lifetime 24 h.
    expect(chain[0]!.validToDate.getTime() - chain[0]!.validFromDate.getTime()).toBe(24 * 3600_000 + 60_000);
  });

  it('refuses to overwrite an existing CA or SVID without --force', async () => {
    const caDir = join(tmp, 'existing');
    expect((await run('ca', 'init', '--trust-domain', TD, '--out', caDir)).code).toBe(0);
    const before = await text(join(caDir, 'ca.key'));
    const again = await run('ca', 'init', '--trust-domain', TD, '--out', caDir);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('CA_ALREADY_EXISTS');
    expect(await text(join(caDir, 'ca.key'))).toBe(before);
    expect((await run('ca', 'init', '--trust-domain', TD, '--out', caDir, '--force')).code).toBe(0);
    expect(await text(join(caDir, 'ca.key'))).not.toBe(before);

    const out = join(tmp, 'existing-svid');
    expect((await run('ca', 'issue', '--ca', caDir, '--spiffe-id', ID, '--out', out)).code).toBe(0);
    expect((await run('ca', 'issue', '--ca', caDir, '--spiffe-id', ID, '--out', out)).stderr).toContain('CA_ALREADY_EXISTS');
    expect((await run('ca', 'issue', '--ca', caDir, '--spiffe-id', ID, '--out', out, '--force')).code).toBe(0);
  });

  it('fails with a coded error (exit 1) for an ID outside the CA trust domain or a missing CA', async () => {
    const caDir = join(tmp, 'root');
    const wrong = await run('ca', 'issue', '--ca', caDir, '--spiffe-id', 'spiffe://elsewhere.example/ns/a/sa/b', '--out', join(tmp, 'x'));
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('CA_SPIFFE_ID_WRONG_TRUST_DOMAIN');
    const missing = await run('ca', 'issue', '--ca', join(tmp, 'nope'), '--spiffe-id', ID, '--out', join(tmp, 'y'));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('CA_FILE_MISSING');
  });

  const usageCases: Array<[string, string[], string]> = [
    ['missing --trust-domain', ['ca', 'init', '--out', 'd'], '--trust-domain'],
    ['missing --out', ['ca', 'init', '--trust-domain', TD], '--out'],
    ['a bad trust domain', ['ca', 'init', '--trust-domain', 'Upper.Case', '--out', 'd'], 'must be lowercase'],
    ['a TTL without unit', ['ca', 'init', '--trust-domain', TD, '--out', 'd', '--ttl', '100'], 'has no unit'],
    ['an unknown flag', ['ca', 'init', '--trust-domain', TD, '--out', 'd', '--bogus'], '--bogus'],
    ['missing --spiffe-id', ['ca', 'issue', '--ca', 'c', '--out', 'd'], '--spiffe-id'],
    ['a malformed SPIFFE ID', ['ca', 'issue', '--ca', 'c', '--out', 'd', '--spiffe-id', 'spiffe://td/a?x=1'], 'a query is not allowed'],
    ['a bad TTL', ['ca', 'issue', '--ca', 'c', '--out', 'd', '--spiffe-id', ID, '--ttl', '1y'], 'is not a duration'],
  ];
  for (const [what, argv, mention] of usageCases) {
    it(`exits 2 with usage for ${what}`, async () => {
      const r = await run(...argv);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(mention);
      // A mistyped flag points to --help in one line instead of printing it (issue 17).
      expect(r.stderr).toContain(what === 'an unknown flag' ? '--help' : 'Usage: meshlet ca');
    });
  }

  it('prints --help for each subcommand and lists both under `meshlet ca`', async () => {
    const init = await run('ca', 'init', '--help');
    expect(init.code).toBe(0);
    expect(init.stdout).toMatch(/^Usage: meshlet ca init --trust-domain TD --out DIR/);
    const issue = await run('ca', 'issue', '--help');
    expect(issue.stdout).toMatch(/^Usage: meshlet ca issue --ca DIR --spiffe-id ID --out DIR/);
    const group = await run('ca', '--help');
    expect(group.stdout).toContain('ca init');
    expect(group.stdout).toContain('ca issue');
  });
});
