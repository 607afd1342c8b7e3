// Issue 17, "The CLI": every failure is one coded line (exit 1), every usage error exit 2,
// a mistyped flag one line with the closest flag, and `meshlet --version`.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closestFlag, editDistance } from '../../../src/cli/command.ts';
import { FilesSource } from '../../../src/data-plane/identity/sources/files.ts';
import { run } from './run.ts';

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'meshlet-cli-errors-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** One line on stderr, with a code, no stack trace. */
function expectOneCodedLine(stderr: string, code: string) {
  expect(stderr.trimEnd().split('\n')).toHaveLength(1);
  expect(stderr).toContain(`: ${code}: `);
  expect(stderr).not.toMatch(/\n\s+at /);
}

describe('ca init / ca issue: filesystem errors are one coded line naming the path, exit 1', () => {
  it('ca init --out under a file (ENOTDIR) names the file and says what to do', async () => {
    const file = join(tmp, 'a-file');
    await writeFile(file, 'x');
    const r = await run('ca', 'init', '--trust-domain', 'cli.example', '--out', join(file, 'ca'));
    expect(r.code).toBe(1);
    expectOneCodedLine(r.stderr, 'CA_OUT_NOT_A_DIRECTORY');
    expect(r.stderr).toContain(`${file} is a file, not a directory (ENOTDIR)`);
    expect(r.stderr).toContain('choose another output directory or move that file away');
  });

  it('ca init --out that is itself a file (EEXIST from mkdir)', async () => {
    const file = join(tmp, 'another-file');
    await writeFile(file, 'x');
    const r = await run('ca', 'init', '--trust-domain', 'cli.example', '--out', file);
    expect(r.code).toBe(1);
    expectOneCodedLine(r.stderr, 'CA_OUT_NOT_A_DIRECTORY');
    expect(r.stderr).toContain(`${file} is a file, not a directory (EEXIST)`);
  });

  it('ca issue --out under a file, and a directory where a file belongs (EISDIR)', async () => {
    const ca = join(tmp, 'ca-for-issue');
    expect((await run('ca', 'init', '--trust-domain', 'cli.example', '--out', ca)).code).toBe(0);
    const file = join(tmp, 'issue-file');
    await writeFile(file, 'x');
    const r = await run('ca', 'issue', '--ca', ca, '--spiffe-id', 'spiffe://cli.example/ns/a/sa/b', '--out', join(file, 'svid'));
    expect(r.code).toBe(1);
    expectOneCodedLine(r.stderr, 'CA_OUT_NOT_A_DIRECTORY');

    const out = join(tmp, 'svid-with-dir');
    await mkdir(join(out, 'svid.crt'), { recursive: true });
    const d = await run('ca', 'issue', '--ca', ca, '--spiffe-id', 'spiffe://cli.example/ns/a/sa/b', '--out', out);
    expect(d.code).toBe(1);
    expectOneCodedLine(d.stderr, 'CA_FILE_UNWRITABLE');
    expect(d.stderr).toContain(`cannot write ${join(out, 'svid.crt')}: it is a directory (EISDIR)`);
  });

  it('ca issue refuses to write into a CA directory (its ca.crt would be replaced)', async () => {
    const ca = join(tmp, 'ca-into-itself');
    expect((await run('ca', 'init', '--trust-domain', 'cli.example', '--out', ca)).code).toBe(0);
    const before = await readFile(join(ca, 'ca.crt'), 'utf8');
    const r = await run('ca', 'issue', '--ca', ca, '--spiffe-id', 'spiffe://cli.example/ns/a/sa/b', '--out', ca);
    expect(r.code).toBe(1);
    expectOneCodedLine(r.stderr, 'CA_OUT_IS_A_CA');
    expect(await readFile(join(ca, 'ca.crt'), 'utf8')).toBe(before);
  });
});

describe('exit codes: a bad flag value is a usage error (2), a bad environment variable a failure (1)', () => {
  it.each([
    ['iptables script --inbound-ports 8080:99999', ['iptables', 'script', '--inbound-ports', '8080:99999'], '--inbound-ports "8080:99999": entry "8080:99999": must be a port number (1-65535)'],
    ['iptables script --proxy-uid 0', ['iptables', 'script', '--proxy-uid', '0'], '--proxy-uid "0": must not be 0'],
    ['iptables script --skip-outbound-cidrs', ['iptables', 'script', '--skip-outbound-cidrs', '1.2.3.4/99'], '--skip-outbound-cidrs "1.2.3.4/99"'],
    ['inject --native-sidecar maybe', ['inject', '--native-sidecar', 'maybe', '/dev/null'], '--native-sidecar "maybe": must be true or false'],
    ['inject --ca-address nohost', ['inject', '--ca-address', 'nohost', '/dev/null'], '--ca-address "nohost"'],
  ])('%s exits 2 naming the flag', async (_what, argv, message) => {
    const r = await run(...argv);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
    expect(r.stderr).not.toContain('MESHLET_CONFIG_INVALID');
  });

  it('the same bad value from the environment stays a configuration failure (exit 1)', async () => {
    const saved = process.env.MESHLET_PROXY_UID;
    process.env.MESHLET_PROXY_UID = '0';
    try {
      const r = await run('iptables', 'script');
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('MESHLET_CONFIG_INVALID');
    } finally {
      if (saved === undefined) delete process.env.MESHLET_PROXY_UID;
      else process.env.MESHLET_PROXY_UID = saved;
    }
  });

  it.each([
    ['bad domain!', 'it has the character " "; only a-z 0-9 . - _ are allowed'],
    ['Cluster.local', 'it has the character "C" (must be lowercase)'],
    ['spiffe://cluster.local', 'give the trust domain alone, e.g. cluster.local, not a SPIFFE ID'],
    ['', 'it is missing'],
  ])('ca init --trust-domain %j exits 2 and says the trust domain is invalid, and why', async (td, why) => {
    const r = await run('ca', 'init', '--trust-domain', td, '--out', join(tmp, 'never'));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`meshlet ca init: --trust-domain ${JSON.stringify(td)} is not a valid trust domain: ${why}`);
    expect(r.stderr).not.toContain('SPIFFE ID "');
  });
});

describe('a mistyped flag: one line with the closest flag, a pointer to --help, exit 2', () => {
  it('suggests --trust-domain for --trust-dmain', async () => {
    const r = await run('ca', 'init', '--trust-dmain', 'x', '--out', 'd');
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('meshlet ca init: unknown flag --trust-dmain (did you mean --trust-domain?)\nRun `meshlet ca init --help` for its flags.\n');
    expect(r.stdout).toBe('');
  });

  it('suggests nothing when nothing is close, and never prints the whole help', async () => {
    const r = await run('demo', '--bogus');
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('meshlet demo: unknown flag --bogus\nRun `meshlet demo --help` for its flags.\n');
  });

  it('works for --flag=value, prefixes and the subcommands of every group', async () => {
    expect((await run('iptables', 'script', '--proxy-ui=5')).stderr).toContain('unknown flag --proxy-ui (did you mean --proxy-uid?)');
    expect((await run('policy', 'explain', 'f.yaml', '--methd', 'GET')).stderr).toContain('(did you mean --method?)');
    expect((await run('ca', 'issue', '--spiffe', 'x')).stderr).toContain('unknown flag --spiffe (did you mean --spiffe-id?)');
  });

  it('a flag without its value, or with one it does not take, is one clear usage error', async () => {
    const missing = await run('ca', 'init', '--trust-domain', 'a.b', '--out');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^meshlet ca init: --out needs a value\n/);
    const extra = await run('ca', 'init', '--trust-domain', 'a.b', '--out', 'd', '--force=yes');
    expect(extra.code).toBe(2);
    expect(extra.stderr).toMatch(/^meshlet ca init: --force takes no value\n/);
  });

  it("README's example of a mistyped flag is what the CLI prints", async () => {
    const readme = await readFile(new URL('../../../README.md', import.meta.url), 'utf8');
    const block = /```\n\$ npx meshlet (ca init --trust-dmain [^\n]*)\n([\s\S]*?)```/.exec(readme);
    expect(block).not.toBeNull();
    const r = await run(...block![1]!.split(' '));
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(block![2]);
  });

  it('closestFlag: only close names, by edit distance', () => {
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(closestFlag('--outt', ['out', 'ttl'])).toBe('--out');
    expect(closestFlag('--tl', ['out', 'ttl'])).toBe('--ttl');
    expect(closestFlag('--zzzzzz', ['out', 'ttl'])).toBeUndefined();
    expect(closestFlag('--x', ['out', 'ttl'])).toBeUndefined();
  });
});

describe('meshlet --version', () => {
  it.each([['--version'], ['-V'], ['version']])('%s prints the version in package.json and exits 0', async (flag) => {
    const pkg = JSON.parse(await readFile(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
    const r = await run(flag);
    expect(r).toEqual({ code: 0, stdout: `meshlet ${pkg.version}\n`, stderr: '' });
  });

  it('is listed in the top-level help', async () => {
    expect((await run('--help')).stdout).toContain('meshlet --version');
  });
});

describe('ca issue output is a files identity source directory as it is', () => {
  it('`ca issue --out DIR`, then a FilesSource on DIR with its defaults loads that SVID', async () => {
    const ca = join(tmp, 'ca-files-source');
    const out = join(tmp, 'svid-files-source');
    const id = 'spiffe://cli.example/ns/default/sa/web';
    expect((await run('ca', 'init', '--trust-domain', 'cli.example', '--out', ca)).code).toBe(0);
    const issue = await run('ca', 'issue', '--ca', ca, '--spiffe-id', id, '--out', out);
    expect(issue.code).toBe(0);
    expect(issue.stdout).toContain('svid.crt, svid.key, bundle.crt (and the same as tls.crt, tls.key, ca.crt for MESHLET_SVID_DIR)');
    for (const [a, b] of [['svid.crt', 'tls.crt'], ['svid.key', 'tls.key'], ['bundle.crt', 'ca.crt']] as const) {
      expect(await readFile(join(out, b), 'utf8')).toBe(await readFile(join(out, a), 'utf8'));
    }
    const source = new FilesSource({ dir: out, startTimeoutMs: 5_000, pollMs: 0 });
    try {
      const snapshot = await source.start();
      expect(snapshot.svid.spiffeId.id).toBe(id);
      expect(snapshot.svid.certChainPem).toBe(await readFile(join(out, 'svid.crt'), 'utf8'));
    } finally {
      await source.close();
    }
  });
});
