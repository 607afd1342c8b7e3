// `meshlet identity` as a real process: configuration by environment (every bad variable
// reported at once), Certify served, metrics on the admin port, graceful exit on SIGTERM.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, chown, readdir, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.ts';
import { writeCa } from '../../../src/control-plane/identity-service/ca.ts';
import { IDENTITY_ENV } from '../../../src/control-plane/identity-service/config.ts';
import { AUDIENCE, certify, makeCa, makeCsr, rawClient, startFakeIssuer, tempDir, TRUST_DOMAIN, waitFor, type FakeIssuer } from './support.ts';

const CLI = fileURLToPath(new URL('../../../src/cli.ts', import.meta.url));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

interface Run {
  child: ChildProcess;
  stdout: string[];
  stderr: string[];
  exit: Promise<number | null>;
}

function run(env: Record<string, string>, as?: { uid: number; gid: number }): Run {
  // Only what the test sets: no MESHLET_* from the developer's shell leaks in.
  const child = spawn(process.execPath, [CLI, 'identity'], { env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'], ...as });
  const stdout: string[] = [];
  const stderr: string[] = [];
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    const lines = buf.split('\n');
    buf = lines.pop()!;
    stdout.push(...lines);
  });
  child.stderr!.on('data', (d: Buffer) => stderr.push(d.toString()));
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, stdout, stderr, exit };
}

describe('meshlet identity (the process)', () => {
  let issuer: FakeIssuer;
  let dir: string;
  let cleanup: () => Promise<void>;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    issuer = await startFakeIssuer();
    ({ dir, cleanup } = await tempDir());
  });
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await issuer?.close();
    await cleanup?.();
  });

  it('--help lists every environment variable', async () => {
    const out: string[] = [];
    const io = { stdout: { write: (s: string) => out.push(s) }, stderr: { write: () => true }, stdin: process.stdin } as never;
    expect(await main(['identity', '--help'], io)).toBe(0);
    for (const v of Object.values(IDENTITY_ENV)) expect(out.join('')).toContain(v.name);
  });

  it('reports every bad variable at once and refuses to start (exit 1)', async () => {
    const r = run({ MESHLET_TRUST_DOMAIN: 'Bad.Domain', MESHLET_SVID_TTL: '24', MESHLET_TOKEN_AUTH: 'trust-me', MESHLET_KUBERNETES_API_URL: 'http://kubernetes', MESHLET_IDENTITY_TLS_CERT: '/tls/tls.crt' });
    children.push(r.child);
    expect(await r.exit).toBe(1);
    const err = r.stderr.join('');
    expect(err).toContain('MESHLET_CONFIG_INVALID');
    for (const name of ['MESHLET_TRUST_DOMAIN', 'MESHLET_SVID_TTL', 'MESHLET_TOKEN_AUTH', 'MESHLET_KUBERNETES_API_URL', 'MESHLET_IDENTITY_TLS_KEY']) expect(err).toContain(name);
  });

  it('refuses to start with a CA of another trust domain', async () => {
    const { ca } = await makeCa();
    const caDir = join(dir, 'ca-other');
    await writeCa(caDir, ca);
    const r = run({ MESHLET_TRUST_DOMAIN: 'other.test', MESHLET_CA_DIR: caDir, MESHLET_TOKEN_AUTH: 'jwks', MESHLET_JWKS_CA_FILE: '/dev/null', MESHLET_IDENTITY_ADMIN_LISTEN: 'off' });
    children.push(r.child);
    expect(await r.exit).toBe(1);
    expect(r.stderr.join('')).toMatch(/IDENTITY_STARTUP_FAILED.*mesh\.test/);
  });

  // The Secret volume as kubelet writes it, the process as deploy/ runs it (uid/gid 2020).
  // Needs root to chown and to drop to another uid; says so instead of passing silently.
  const asRoot = process.getuid?.() === 0;
  it.skipIf(!asRoot)('a CA Secret without fsGroup (root:root 0440) is one line naming the file; with fsGroup (root:2020) it starts [needs root]', async () => {
    const { ca } = await makeCa();
    const caDir = join(dir, 'ca-secret');
    await writeCa(caDir, ca);
    await chmod(dir, 0o755);
    await chmod(caDir, 0o755);
    const files = await readdir(caDir);
    for (const f of files) {
      await chown(join(caDir, f), 0, 0);
      await chmod(join(caDir, f), 0o440);
    }
    const env = { MESHLET_TRUST_DOMAIN: TRUST_DOMAIN, MESHLET_CA_DIR: caDir, MESHLET_TOKEN_AUTH: 'jwks', MESHLET_JWKS_CA_FILE: '/dev/null', MESHLET_IDENTITY_LISTEN: `127.0.0.1:${await freePort()}`, MESHLET_IDENTITY_ADMIN_LISTEN: 'off' };
    const denied = run(env, { uid: 2020, gid: 2020 });
    children.push(denied.child);
    expect(await denied.exit).toBe(1);
    const err = denied.stderr.join('');
    expect(err.trim().split('\n')).toEqual([`meshlet identity: CA_FILE_UNREADABLE: cannot read ${join(caDir, 'ca.crt')}: EACCES (running as uid 2020, gid 2020); a Secret volume needs the pod's securityContext.fsGroup to be readable by a non-root user`]);
    expect(err).not.toMatch(/\n\s+at /);

    // What fsGroup 2020 makes of the same files: group 2020, mode | 0440.
    for (const f of files) await chown(join(caDir, f), 0, 2020);
    const started = run(env, { uid: 2020, gid: 2020 });
    children.push(started.child);
    await waitFor(() => started.stdout.some((l) => l.includes('"event":"started"')) || started.child.exitCode !== null, 'the started log line', 30_000);
    expect(started.child.exitCode, started.stderr.join('')).toBeNull();
    started.child.kill('SIGTERM');
    expect(await started.exit).toBe(0);
  });
  if (!asRoot) it.skip('CA Secret ownership as kubelet writes it: skipped, needs root (chown, run as uid 2020)', () => {});

  it('serves Certify and /metrics, and exits 0 on SIGTERM', async () => {
    const { root, ca } = await makeCa();
    const caDir = join(dir, 'ca');
    await writeCa(caDir, ca);
    const jwksCa = join(dir, 'jwks-ca.crt');
    await writeFile(jwksCa, issuer.caPem);
    const apiToken = join(dir, 'api-token');
    await writeFile(apiToken, 'service-token');
    const [port, adminPort] = [await freePort(), await freePort()];
    const r = run({
      MESHLET_TRUST_DOMAIN: TRUST_DOMAIN,
      MESHLET_CA_DIR: caDir,
      MESHLET_IDENTITY_LISTEN: `127.0.0.1:${port}`,
      MESHLET_IDENTITY_ADMIN_LISTEN: `127.0.0.1:${adminPort}`,
      MESHLET_TOKEN_AUTH: 'jwks',
      MESHLET_JWKS_URL: issuer.jwksUrl,
      MESHLET_JWKS_ISSUER: issuer.issuer,
      MESHLET_JWKS_CA_FILE: jwksCa,
      MESHLET_KUBERNETES_TOKEN_FILE: apiToken,
      MESHLET_SVID_TTL: '1h',
    });
    children.push(r.child);
    await waitFor(() => r.stdout.some((l) => l.includes('"event":"started"')) || r.child.exitCode !== null, 'the started log line', 30_000);
    expect(r.child.exitCode, r.stderr.join('')).toBeNull();

    const client = rawClient(`127.0.0.1:${port}`, root.bundlePem);
    try {
      const out = await certify(client, { token: await issuer.mint({ namespace: 'shop', serviceAccount: 'orders', audience: AUDIENCE }), csr: await makeCsr() });
      if (!out.ok) throw out.err;
      expect(out.res.spiffe_id).toBe(`spiffe://${TRUST_DOMAIN}/ns/shop/sa/orders`);
      const bad = await certify(client, { token: 'garbage', csr: await makeCsr() });
      expect(bad.ok).toBe(false);
    } finally {
      client.close();
    }
    const metrics = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
    expect(metrics).toMatch(/^meshlet_identity_certificates_issued_total 1$/m);
    expect(metrics).toMatch(/^meshlet_identity_certificates_refused_total\{reason="token_invalid"\} 1$/m);
    expect(r.stdout.some((l) => l.includes('"event":"svid_refused"') && l.includes('IDENTITY_TOKEN_INVALID'))).toBe(true);

    r.child.kill('SIGTERM');
    expect(await r.exit).toBe(0);
    expect(r.stdout.some((l) => l.includes('"event":"stopped"'))).toBe(true);
  });
});
