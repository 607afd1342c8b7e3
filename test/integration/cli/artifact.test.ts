// The production artifact (scripts/build-dist.mjs, `npm run build`): what deploy/Dockerfile
// copies into the image and what the bench measures (docs/performance.md, "The artifact").
// Built here into a temporary directory, with the repository's node_modules beside it as the
// image has its own. Every command the image is for runs from it alone; the demo, which is
// development tooling, says in one line that it is absent; the sidecar loads only what the
// sidecar uses; the modules found by URL at run time (the policy parse worker, the protos, the
// addon when built) are there. docs/architecture.md, "The tree".
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePorts } from '../../support/free-port.ts';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const FIXTURES = join(REPO, 'test/fixtures/generated');
let work: string;
let tree: string;

function run(file: string, argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [file, ...argv], { timeout: 60_000, cwd: work, env }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}
const meshlet = (argv: string[]) => run(join(tree, 'bin/meshlet.js'), argv);

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) out.push(relative(dir, join(e.parentPath, e.name)));
  return out;
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'meshlet-artifact-'));
  tree = join(work, 'app');
  const built = await run(join(REPO, 'scripts/build-dist.mjs'), ['--out', tree]);
  expect(built.stderr).toBe('');
  expect(built.code).toBe(0);
  // The image has its production node_modules next to the artifact (/app/node_modules).
  await symlink(join(REPO, 'node_modules'), join(work, 'node_modules'));
}, 120_000);
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('the built artifact', () => {
  it('is compiled JavaScript laid out as the repository, without development tooling', async () => {
    const files = await filesUnder(tree);
    expect(files).toContain('bin/meshlet.js');
    expect(files).toContain('src/cli/main.js');
    expect(files).toContain('src/data-plane/policy/parse-worker.js');
    expect(files).toContain('src/data-plane/policy/generated/validate-policy.js');
    expect(files).toContain('src/data-plane/identity/proto/workload.proto');
    expect(files).toContain('package.json');
    expect(files.filter((f) => f.endsWith('.ts'))).toEqual([]);
    expect(files.filter((f) => f.startsWith('src/dev/') || f === 'src/cli.js')).toEqual([]);
    // The addon travels with the artifact whenever it was built (npm ci with a toolchain).
    expect(files.includes('build/Release/original_dst.node')).toBe(existsSync(join(REPO, 'build/Release/original_dst.node')));
    // Nothing in the compiled code still points at a TypeScript module.
    for (const f of files.filter((x) => x.endsWith('.js'))) {
      const text = await readFile(join(tree, f), 'utf8');
      expect({ file: f, tsImport: /(?:from\s*|import\s*\(\s*)['"][^'"]+\.ts['"]/.test(text) }).toEqual({ file: f, tsImport: false });
    }
  });

  it.each([['sidecar'], ['identity'], ['injector'], ['inject'], ['connections'], ['top'], ['wait-ready'], ['install'], ['check']])('meshlet %s --help runs', async (command) => {
    const r = await meshlet([command, '--help']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: meshlet /);
  });

  it('prints the version of the package it was built from', async () => {
    const pkg = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as { version: string };
    const r = await meshlet(['--version']);
    expect(r.stdout.trim()).toBe(`meshlet ${pkg.version}`);
  });

  it('issues certificates, checks policies and prints iptables rules', async () => {
    const ca = await meshlet(['ca', 'init', '--trust-domain', 'cluster.local', '--out', join(work, 'ca')]);
    expect(ca.code).toBe(0);
    const policy = await meshlet(['policy', 'check', join(REPO, 'test/fixtures/policy/valid-orders.yaml')]);
    expect(policy.stderr).toBe('');
    expect(policy.code).toBe(0);
    const rules = await meshlet(['iptables', 'script', '--inbound-ports', '8080:15100/http']);
    expect(rules.code).toBe(0);
    expect(rules.stdout).toContain('15100');
  });

  it('meshlet install prints the control plane from the manifests the artifact carries', async () => {
    const r = await meshlet(['install', '--ca-dir', join(work, 'ca')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('kind: MutatingWebhookConfiguration');
    expect(r.stdout).toContain('name: meshlet-identity-ca');
  });

  it('meshlet demo says in one line that it is development tooling, exit 1', async () => {
    const r = await meshlet(['demo']);
    expect(r.code).toBe(1);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('DEV_TOOLING_ABSENT');
    expect(r.stderr).toContain('npm start');
  });

  it('parses a large policy in its worker thread (found by URL, compiled as .js)', async () => {
    const mod = (await import(pathToFileURL(join(tree, 'src/data-plane/policy/parse-off-thread.js')).href)) as typeof import('../../../src/data-plane/policy/parse-off-thread.ts');
    const text = await readFile(join(REPO, 'test/fixtures/policy/valid-orders.yaml'), 'utf8');
    const r = await mod.parsePolicyOffThread(text, 'valid-orders.yaml', { minBytes: 0 });
    expect(r.ran).toBe('worker');
    expect(r.result.ok).toBe(true);
  });
});

describe('the sidecar from the artifact', () => {
  let child: ChildProcess | undefined;
  afterAll(() => {
    child?.kill('SIGKILL');
  });

  it('gets ready and has loaded only data-plane and common modules', async () => {
    const svid = join(work, 'svid');
    const policy = join(work, 'policy');
    await mkdir(svid, { recursive: true });
    await mkdir(policy, { recursive: true });
    await copyFile(join(FIXTURES, 'good-leaf.pem'), join(svid, 'tls.crt'));
    await copyFile(join(FIXTURES, 'good-leaf.key'), join(svid, 'tls.key'));
    await copyFile(join(FIXTURES, 'bundle.pem'), join(svid, 'ca.crt'));
    // A module hook that writes down every module the process loads (Node's synchronous hooks).
    const loaded = join(work, 'loaded.txt');
    const hooks = join(work, 'record-loads.mjs');
    // Node's own modules go through no hook: the list of those it has loaded is written twice a second.
    const builtins = join(work, 'builtins.txt');
    await writeFile(hooks, `import { registerHooks } from 'node:module';\nimport { appendFileSync, writeFileSync } from 'node:fs';\nregisterHooks({ load(url, ctx, next) { appendFileSync(${JSON.stringify(loaded)}, url + '\\n'); return next(url, ctx); } });\nsetInterval(() => writeFileSync(${JSON.stringify(builtins)}, process.moduleLoadList.join('\\n')), 500).unref();\n`);
    const [admin, outbound, catchAll, app, listen] = await freePorts(5);
    child = spawn(process.execPath, ['--import', pathToFileURL(hooks).href, join(tree, 'bin/meshlet.js'), 'sidecar'], {
      cwd: work,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env.PATH,
        MESHLET_TRUST_DOMAIN: 'example.org',
        MESHLET_NAMESPACE: 'default',
        MESHLET_SERVICE_ACCOUNT: 'fixture',
        MESHLET_POD_NAME: 'artifact',
        MESHLET_IDENTITY_SOURCE: 'files',
        MESHLET_SVID_DIR: svid,
        MESHLET_POLICY_DIR: policy,
        MESHLET_INBOUND_PORTS: `${app}:${listen}/http`,
        MESHLET_OUTBOUND_PORT: String(outbound),
        MESHLET_ADMIN_PORT: String(admin),
        MESHLET_ADMIN_ADDRESS: '127.0.0.1',
        MESHLET_INBOUND_CATCHALL_PORT: String(catchAll),
        MESHLET_LOG_LEVEL: 'warn',
      },
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    let ready = false;
    for (let i = 0; i < 200 && !ready && child.exitCode === null; i++) {
      ready = await fetch(`http://127.0.0.1:${admin}/ready`).then((r) => r.status === 200, () => false);
      if (!ready) await new Promise((r) => setTimeout(r, 100));
    }
    expect({ ready, stderr: ready ? '' : stderr }).toEqual({ ready: true, stderr: '' });
    const urls = (await readFile(loaded, 'utf8')).split('\n').filter(Boolean);
    const own = urls.filter((u) => u.startsWith(pathToFileURL(tree).href)).map((u) => u.slice(pathToFileURL(tree).href.length + 1));
    expect(own).toContain('src/data-plane/sidecar/sidecar.js');
    // The sidecar never loads the control plane, the other commands' modules or the gRPC stack
    // (the files identity source needs none of it; workload-api and meshlet-ca load it lazily).
    expect(own.filter((m) => m.startsWith('src/control-plane/') || m.startsWith('src/dev/'))).toEqual([]);
    expect(own.filter((m) => m.startsWith('src/cli/commands/') && m !== 'src/cli/commands/sidecar.js')).toEqual([]);
    expect(urls.filter((u) => /node_modules\/(@grpc|@peculiar|jose|undici)\//.test(u))).toEqual([]);
    // Policies are checked by ajv's standalone code generated ahead of time (src/data-plane/policy/generated/):
    // of ajv the sidecar loads at most the runtime helpers that code requires, never the compiler.
    expect(urls.filter((u) => /node_modules\/ajv\/(?!dist\/runtime\/)/.test(u))).toEqual([]);
    // Nor Node's bundled undici (fetch, WebSocket), which an ES import of node:http pulls in
    // (src/common/net/node-http.ts): read after ready plus one write of the list.
    await new Promise((r) => setTimeout(r, 1_000));
    const nodeModules = (await readFile(builtins, 'utf8')).split('\n');
    expect(nodeModules).toContain('NativeModule http');
    expect(nodeModules.filter((m) => /undici/.test(m))).toEqual([]);
  }, 60_000);
});
