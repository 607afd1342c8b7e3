import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { meshOfTwo, type MeshOfTwo } from './mesh-of-two.ts';

/** `meshlet sidecar` as the real process kubelet starts: env in, ready line out, SIGTERM -> exit 0. */
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

describe('meshlet sidecar process', () => {
  it('refuses to start on bad configuration, listing every problem at once', async () => {
    const p = run({ MESHLET_NAMESPACE: 'shop', MESHLET_ADMIN_PORT: 'x', MESHLET_DEFAULT_POLICY: 'open' });
    expect(await p.exited).toBe(1);
    expect(p.err()).toContain('MESHLET_CONFIG_INVALID');
    expect(p.err()).toContain('MESHLET_SERVICE_ACCOUNT');
    expect(p.err()).toContain('MESHLET_ADMIN_PORT="x"');
    expect(p.err()).toContain('MESHLET_DEFAULT_POLICY="open"');
  });

  it('starts, serves /ready, and exits 0 on SIGTERM', async () => {
    const p = run({ ...mesh.ordersEnv, MESHLET_LOG_LEVEL: 'info' });
    const deadline = Date.now() + 60_000;
    while (!p.out().includes('ready') && Date.now() < deadline) {
      if (p.child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(p.out(), p.err()).toContain('meshlet sidecar: ready');
    expect((await fetch(`http://127.0.0.1:${mesh.ports.ordersAdmin}/ready`)).status).toBe(200);
    p.child.kill('SIGTERM');
    expect(await p.exited).toBe(0);
    expect(p.err()).toContain('"event":"stopped"');
  });
});
