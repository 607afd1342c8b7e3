// What the image ships (deploy/Dockerfile + Dockerfile.dockerignore): bin/, src/ without
// src/dev/ (and without tests and micro-benchmarks), package.json and the dependencies. Every
// command the image is for must run from that tree alone; the demo, which is development
// tooling, says it is absent in one line. docs/architecture.md, "The tree".
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
let tree: string;

function meshlet(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(tree, 'bin/meshlet.js'), ...argv], { timeout: 30_000, cwd: tree }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

beforeAll(async () => {
  tree = await mkdtemp(join(tmpdir(), 'meshlet-image-tree-'));
  const ignore = await readFile(join(REPO, 'deploy/Dockerfile.dockerignore'), 'utf8');
  // The rules this copy follows are the ones the image build reads.
  expect(ignore).toMatch(/^src\/dev\/\*\*$/m);
  expect(ignore).toMatch(/^\*\*\/\*\.test\.ts$/m);
  await cp(join(REPO, 'bin'), join(tree, 'bin'), { recursive: true });
  await cp(join(REPO, 'src'), join(tree, 'src'), {
    recursive: true,
    filter: (src) => !src.startsWith(join(REPO, 'src/dev')) && !src.endsWith('.test.ts') && !src.endsWith('.bench.ts'),
  });
  await cp(join(REPO, 'package.json'), join(tree, 'package.json'));
  await symlink(join(REPO, 'node_modules'), join(tree, 'node_modules'));
});
afterAll(async () => {
  await rm(tree, { recursive: true, force: true });
});

describe('the image tree (src/ without src/dev/)', () => {
  it.each([['sidecar'], ['identity'], ['injector'], ['inject'], ['connections'], ['top'], ['wait-ready']])('meshlet %s --help runs', async (command) => {
    const r = await meshlet([command, '--help']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: meshlet /);
  });

  it('issues certificates and checks policies from that tree', async () => {
    const ca = await meshlet(['ca', 'init', '--trust-domain', 'cluster.local', '--out', join(tree, 'ca')]);
    expect(ca.code).toBe(0);
    const policy = await meshlet(['policy', 'check', join(REPO, 'test/fixtures/policy/valid-orders.yaml')]);
    expect(policy.stderr).toBe('');
    expect(policy.code).toBe(0);
    const rules = await meshlet(['iptables', 'script', '--inbound-ports', '8080:15100/http']);
    expect(rules.code).toBe(0);
    expect(rules.stdout).toContain('15100');
  });

  it('meshlet demo says in one line that it is development tooling, exit 1', async () => {
    const r = await meshlet(['demo']);
    expect(r.code).toBe(1);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('DEV_TOOLING_ABSENT');
    expect(r.stderr).toContain('npm start');
  });
});
