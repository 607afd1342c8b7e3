// `meshlet identity` with MESHLET_IDENTITY_REVOCATION_LIST, as a real process (docs/revocation.md
// "The identity service"): Certify for a revoked identity is PERMISSION_DENIED naming the ID and
// "revoked", counted under reason `revoked`; the list is followed without a restart; a list that
// is there but invalid refuses the start.
import { status } from '@grpc/grpc-js';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCa } from '../../../src/control-plane/identity-service/ca.ts';
import { formatRevocationList } from '../../../src/data-plane/identity/revocation/revocation-list.ts';
import { kubeletWrite } from '../../support/kubelet-volume.ts';
import { AUDIENCE, certify, makeCa, makeCsr, rawClient, serviceCode, startFakeIssuer, tempDir, TRUST_DOMAIN, waitFor, type FakeIssuer } from '../identity-service/support.ts';

const CLI = fileURLToPath(new URL('../../../src/cli.ts', import.meta.url));
const ORDERS = `spiffe://${TRUST_DOMAIN}/ns/shop/sa/orders`;
const KEY = 'revocations.json';

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

function run(env: Record<string, string>): { child: ChildProcess; stdout: () => string; stderr: () => string; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [CLI, 'identity'], { env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, stdout: () => out, stderr: () => err, exit };
}

const list = (...ids: string[]): string => formatRevocationList(ids.map((spiffeId) => ({ spiffeId, revokedAt: '2026-12-04T07:00:00Z', reason: 'compromised' })));

describe('meshlet identity with MESHLET_IDENTITY_REVOCATION_LIST', () => {
  let issuer: FakeIssuer;
  let dir: string;
  let cleanup: () => Promise<void>;
  let env: Record<string, string>;
  let rootPem: string;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    issuer = await startFakeIssuer();
    ({ dir, cleanup } = await tempDir());
    const { root, ca } = await makeCa();
    rootPem = root.bundlePem;
    await writeCa(join(dir, 'ca'), ca);
    await writeFile(join(dir, 'jwks-ca.crt'), issuer.caPem);
    await writeFile(join(dir, 'api-token'), 'service-token');
    env = {
      MESHLET_TRUST_DOMAIN: TRUST_DOMAIN,
      MESHLET_CA_DIR: join(dir, 'ca'),
      MESHLET_TOKEN_AUTH: 'jwks',
      MESHLET_JWKS_URL: issuer.jwksUrl,
      MESHLET_JWKS_ISSUER: issuer.issuer,
      MESHLET_JWKS_CA_FILE: join(dir, 'jwks-ca.crt'),
      MESHLET_KUBERNETES_TOKEN_FILE: join(dir, 'api-token'),
      MESHLET_SVID_TTL: '1h',
      MESHLET_IDENTITY_REVOCATION_LIST: join(dir, 'revocations', KEY),
    };
  });
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await issuer?.close();
    await cleanup?.();
  });

  it('refuses Certify for a revoked identity (PERMISSION_DENIED, IDENTITY_REVOKED, counted), issues again once it is removed, no restart', async () => {
    await kubeletWrite(join(dir, 'revocations'), { [KEY]: list(ORDERS) });
    const [port, adminPort] = [await freePort(), await freePort()];
    const r = run({ ...env, MESHLET_IDENTITY_LISTEN: `127.0.0.1:${port}`, MESHLET_IDENTITY_ADMIN_LISTEN: `127.0.0.1:${adminPort}` });
    children.push(r.child);
    await waitFor(() => r.stdout().includes('"event":"started"') || r.child.exitCode !== null, 'the started log line', 30_000);
    expect(r.child.exitCode, r.stderr()).toBeNull();
    expect(r.stdout()).toContain('"event":"revocation_list_loaded"');

    const client = rawClient(`127.0.0.1:${port}`, rootPem);
    try {
      const token = await issuer.mint({ namespace: 'shop', serviceAccount: 'orders', audience: AUDIENCE });
      const refused = await certify(client, { token, csr: await makeCsr() });
      expect(refused.ok).toBe(false);
      if (refused.ok) return;
      expect(refused.err.code).toBe(status.PERMISSION_DENIED);
      expect(serviceCode(refused)).toBe('IDENTITY_REVOKED');
      expect(refused.err.details).toBe(`${ORDERS} is revoked (revocation list): the identity service issues it no SVID until it is removed from the list`);
      // Other identities are not affected.
      const other = await certify(client, { token: await issuer.mint({ namespace: 'shop', serviceAccount: 'billing', audience: AUDIENCE }), csr: await makeCsr() });
      expect(other.ok).toBe(true);

      let metrics = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
      expect(metrics).toMatch(/^meshlet_identity_certificates_refused_total\{reason="revoked"\} 1$/m);
      expect(metrics).toMatch(/^meshlet_revocation_revoked_identities 1$/m);
      expect(r.stdout()).toMatch(/"event":"svid_refused","code":"IDENTITY_REVOKED","reason":"revoked","spiffeId":"spiffe:\/\/mesh\.test\/ns\/shop\/sa\/orders"/);

      // A malformed list keeps the revocation in force.
      await kubeletWrite(join(dir, 'revocations'), { [KEY]: '{"apiVersion":"meshlet.io/v1alpha1","kind":"RevocationList","revoked":[],"extra":1}' });
      await waitFor(() => r.stdout().includes('"event":"revocation_list_rejected"'), 'the malformed list to be rejected');
      const still = await certify(client, { token, csr: await makeCsr() });
      expect(still.ok ? 'issued' : serviceCode(still)).toBe('IDENTITY_REVOKED');
      metrics = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
      expect(metrics).toMatch(/^meshlet_revocation_rejected_total\{code="REVOCATION_LIST_INVALID"\} 1$/m);

      await kubeletWrite(join(dir, 'revocations'), { [KEY]: list() });
      await waitFor(() => (r.stdout().match(/"event":"revocation_list_loaded"/g) ?? []).length >= 2, 'the empty list to be loaded');
      const issued = await certify(client, { token, csr: await makeCsr() });
      if (!issued.ok) throw issued.err;
      expect(issued.res.spiffe_id).toBe(ORDERS);
    } finally {
      client.close();
    }
    r.child.kill('SIGTERM');
    expect(await r.exit).toBe(0);
  });

  it('refuses to start with a list that is there but invalid, naming the variable, the file and the problem', async () => {
    const bad = join(dir, 'bad-revocations.json');
    await writeFile(bad, '{"apiVersion":"meshlet.io/v1alpha1","kind":"RevocationList","revoked":[{"spiffeId":"spiffe://mesh.test/ns/shop/sa/orders","revokedAt":"yesterday"}]}');
    const r = run({ ...env, MESHLET_IDENTITY_REVOCATION_LIST: bad, MESHLET_IDENTITY_LISTEN: `127.0.0.1:${await freePort()}`, MESHLET_IDENTITY_ADMIN_LISTEN: 'off' });
    children.push(r.child);
    expect(await r.exit).toBe(1);
    expect(r.stderr().trim()).toBe(`meshlet identity: IDENTITY_STARTUP_FAILED: MESHLET_IDENTITY_REVOCATION_LIST: REVOCATION_LIST_INVALID: ${bad}: revoked[0].revokedAt: must be an RFC 3339 date-time such as "2026-12-04T07:00:00Z", got "yesterday"`);
  });
});
