import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { meshOfTwo, type MeshOfTwo } from '../sidecar/mesh-of-two.ts';
import { callThrough, until } from './fixture.ts';

/**
 * Issue 16 item 1 — MESHLET_DEFAULT_CLIENT_POLICY on the real `meshlet sidecar` process: an
 * unknown value stops it naming the variable; `deny` with no client policy refuses the app's
 * call with the reason, while the default (`allow`) leaves outbound as it was.
 */
const BIN = fileURLToPath(new URL('../../../bin/meshlet.js', import.meta.url));
let mesh: MeshOfTwo;

beforeAll(async () => {
  mesh = await meshOfTwo();
});
afterAll(async () => {
  await mesh?.close();
});

function run(env: Record<string, string>) {
  const child = spawn(process.execPath, [BIN, 'sidecar'], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, out: () => stdout, err: () => stderr };
}

describe('MESHLET_DEFAULT_CLIENT_POLICY, real sidecar process', () => {
  it('an unknown value: the process stops with a message naming the variable and the value', async () => {
    const p = run({ ...mesh.frontendEnv, MESHLET_DEFAULT_CLIENT_POLICY: 'open' });
    expect(await p.exited).toBe(1);
    expect(p.err()).toContain('MESHLET_CONFIG_INVALID');
    expect(p.err()).toContain('MESHLET_DEFAULT_CLIENT_POLICY="open"');
  });

  it('deny, and no client selects the workload: the call is refused 403 with the mesh default as the reason', async () => {
    const p = run({ ...mesh.frontendEnv, MESHLET_DEFAULT_CLIENT_POLICY: 'deny', MESHLET_LOG_LEVEL: 'info' });
    try {
      await until(() => p.out().includes('meshlet sidecar: ready') || p.child.exitCode !== null, 60_000);
      expect(p.out(), p.err()).toContain('meshlet sidecar: ready');
      const r = await callThrough(mesh.ports.frontendOutbound, 'orders.shop', '/orders');
      expect(r.status).toBe(403);
      expect(JSON.parse(r.body).error).toEqual({
        code: 'MESHLET_DENIED',
        message: 'request denied by the client policy',
        route: null,
        client: null,
        reason: `destination orders.shop:80 (spiffe://cluster.local/ns/shop/sa/orders): no client of the policy selects this workload; the mesh client default (MESHLET_DEFAULT_CLIENT_POLICY) is deny`,
      });
      expect(mesh.seen).toEqual([]);
    } finally {
      p.child.kill('SIGTERM');
      expect(await p.exited).toBe(0);
    }
  });
});
