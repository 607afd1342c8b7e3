// Issue 17, "The CLI", as a user runs it: bin/meshlet.js in a real process.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const BIN = fileURLToPath(new URL('../../../bin/meshlet.js', import.meta.url));
const SYSTEM_NODE = '/usr/bin/node';
const SETPRIV = '/usr/bin/setpriv';

function meshlet(argv: string[], opts: { node?: string; prefix?: string[] } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const [file, ...args] = [...(opts.prefix ?? []), opts.node ?? process.execPath, BIN, ...argv];
  return new Promise((resolve) => {
    execFile(file!, args, { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

function nodeMajor(node: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    execFile(node, ['-p', 'process.versions.node'], (err, stdout) => resolve(err ? undefined : Number(stdout.split('.')[0])));
  });
}

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'meshlet-cli-process-'));
  await chmod(tmp, 0o755);
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** One line on stderr, no stack trace. */
function expectOneLine(stderr: string) {
  expect(stderr.trimEnd().split('\n')).toHaveLength(1);
  expect(stderr).not.toMatch(/\n\s+at |ERR_UNKNOWN_FILE_EXTENSION/);
}

describe('bin/meshlet.js, in a real process', () => {
  it('under a Node older than 24 says Node 24 is needed and how to run it, exit 1', async (ctx) => {
    const major = existsSync(SYSTEM_NODE) ? await nodeMajor(SYSTEM_NODE) : undefined;
    if (major === undefined || major >= 24) {
      console.log(`skipped: ${SYSTEM_NODE} ${major === undefined ? 'is absent' : `is Node ${major}, not older than 24`}`);
      ctx.skip();
    }
    const r = await meshlet(['ca', 'init', '--help'], { node: SYSTEM_NODE });
    expect(r.code).toBe(1);
    expectOneLine(r.stderr);
    expect(r.stderr).toMatch(/^meshlet needs Node 24 or newer \(found v\d+\.\d+\.\d+\); run it as `npx meshlet …` after `npm ci`/);
    expect(r.stdout).toBe('');
  });

  it('--version prints the package version', async () => {
    const r = await meshlet(['--version']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toMatch(/^meshlet \d+\.\d+\.\d+/);
  });

  it('iptables script --inbound-ports 8080:99999 exits 2', async () => {
    const r = await meshlet(['iptables', 'script', '--inbound-ports', '8080:99999']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--inbound-ports "8080:99999"');
  });

  it('a mistyped flag exits 2 with two lines: the closest flag and where --help is', async () => {
    const r = await meshlet(['ca', 'init', '--trust-dmain', 'a.b', '--out', join(tmp, 'x')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('meshlet ca init: unknown flag --trust-dmain (did you mean --trust-domain?)\nRun `meshlet ca init --help` for its flags.\n');
  });

  it('ca init / ca issue into a directory the user cannot write: one coded line naming the path, exit 1', async (ctx) => {
    const readOnly = join(tmp, 'read-only');
    await mkdir(readOnly, { mode: 0o755 });
    const ca = join(tmp, 'ca');
    expect((await meshlet(['ca', 'init', '--trust-domain', 'cli.example', '--out', ca])).code).toBe(0);
    await chmod(ca, 0o755);
    await chmod(join(ca, 'ca.key'), 0o644);
    // root writes anywhere: run as nobody then (setpriv), else make the directory read-only.
    let prefix: string[] = [];
    if (process.getuid?.() === 0) {
      if (!existsSync(SETPRIV)) {
        console.log(`skipped: running as root and ${SETPRIV} is absent, so EACCES cannot happen`);
        ctx.skip();
      }
      prefix = [SETPRIV, '--reuid=65534', '--regid=65534', '--clear-groups'];
    } else {
      await chmod(readOnly, 0o555);
    }
    const init = await meshlet(['ca', 'init', '--trust-domain', 'cli.example', '--out', join(readOnly, 'ca')], { prefix });
    expect(init.code).toBe(1);
    expectOneLine(init.stderr);
    expect(init.stderr).toContain(`meshlet ca init: CA_FILE_UNWRITABLE: cannot create directory ${join(readOnly, 'ca')}: EACCES`);
    expect(init.stderr).toContain(`make ${readOnly} writable for this user or choose another output directory`);

    const issue = await meshlet(['ca', 'issue', '--ca', ca, '--spiffe-id', 'spiffe://cli.example/ns/a/sa/b', '--out', readOnly], { prefix });
    expect(issue.code).toBe(1);
    expectOneLine(issue.stderr);
    expect(issue.stderr).toMatch(new RegExp(`^meshlet ca issue: CA_FILE_UNWRITABLE: cannot write ${readOnly}/svid\\.key: EACCES`));
  });
});
