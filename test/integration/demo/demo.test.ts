import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DemoMesh } from '../../../src/dev/demo/demo-mesh.ts';

/** `meshlet demo`, what `npm start` runs: allowed and denied calls, live policy edits, clean Ctrl-C. */
const BIN = fileURLToPath(new URL('../../../bin/meshlet.js', import.meta.url));

function startDemo(args: string[]) {
  const child = spawn(process.execPath, [BIN, 'demo', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, out: () => out, err: () => err };
}

describe('meshlet demo', () => {
  it('shows allowed and denied calls with their reasons, where to look next, and exits 0', async () => {
    const demo = startDemo(['--rounds', '1']);
    expect(await demo.exited, demo.err()).toBe(0);
    const out = demo.out();
    expect(out).toMatch(/frontend -> orders\s+GET \/orders\s+200\s+ALLOW\s+the app saw caller spiffe:\/\/demo\.local\/ns\/web\/sa\/frontend/);
    expect(out).toMatch(/frontend -> orders\s+DELETE \/orders\/7\s+403\s+DENY\s+route=unmatched: no route of server "orders" matches/);
    expect(out).toMatch(/orders\s+-> payments\s+POST \/charge\s+200\s+ALLOW/);
    expect(out).toMatch(/frontend -> payments\s+POST \/charge\s+403\s+DENY\s+route=charge/);
    expect(out).toMatch(/admin http:\/\/127\.0\.0\.1:\d+/);
    expect(out).toContain('npx meshlet policy explain ');
    expect(out).toContain('meshlet demo: stopped cleanly.');
  });

  it('stops cleanly on Ctrl-C (SIGINT) while running', async () => {
    const demo = startDemo(['--interval', '500ms']);
    const deadline = Date.now() + 60_000;
    while (!demo.out().includes('ALLOW') && Date.now() < deadline && demo.child.exitCode === null) await new Promise((r) => setTimeout(r, 100));
    expect(demo.out(), demo.err()).toContain('ALLOW');
    demo.child.kill('SIGINT');
    expect(await demo.exited).toBe(0);
    expect(demo.out()).toContain('meshlet demo: stopped cleanly.');
  });

  it('reloads an edited policy live, and keeps the last good one when an edit is invalid', async () => {
    const mesh = new DemoMesh();
    await mesh.start();
    try {
      const deleteOrder = { from: 'frontend', to: 'orders', method: 'DELETE', path: '/orders/7' };
      expect((await mesh.call(deleteOrder)).decision).toBe('deny');
      const policy = await readFile(mesh.policyFile, 'utf8');
      await writeFile(mesh.policyFile, policy.replace('methods: [GET]', 'methods: [GET, DELETE]'));
      let decision = 'deny';
      for (let i = 0; i < 150 && decision !== 'allow'; i++) {
        decision = (await mesh.call(deleteOrder)).decision;
        if (decision !== 'allow') await new Promise((r) => setTimeout(r, 100));
      }
      expect(decision).toBe('allow');
      // An invalid edit is refused: the last good policy (DELETE allowed) stays.
      await writeFile(mesh.policyFile, 'apiVersion: policy.meshlet.io/v1alpha1\nkind: AuthorizationPolicy\nspec: { servers: 7 }\n');
      await new Promise((r) => setTimeout(r, 1_500));
      expect((await mesh.call(deleteOrder)).decision).toBe('allow');
    } finally {
      await mesh.stop();
    }
  });
});
