// `meshlet demo --pods`: the demo mesh in network-namespace pods with transparent
// interception. Needs root + iproute2 + iptables (what the e2e suite needs); otherwise the
// pod runs are skipped with the reason printed, and only the refusal without root is tested.
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { e2eSkipped } from '../../e2e/harness/availability.ts';

const BIN = fileURLToPath(new URL('../../../bin/meshlet.js', import.meta.url));
const isRoot = process.getuid?.() === 0;

function startDemo(args: string[], options: { uid?: number } = {}) {
  // As another uid through setpriv (util-linux), to see what a non-root user gets.
  const [cmd, argv] = options.uid === undefined ? [process.execPath, [BIN, 'demo', ...args]] : ['setpriv', [`--reuid=${options.uid}`, `--regid=${options.uid}`, '--clear-groups', '--', process.execPath, BIN, 'demo', ...args]];
  // Its own process group, so a test can send SIGINT to the whole group, as a terminal's Ctrl-C does.
  const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, out: () => out, err: () => err };
}

/** Ctrl-C in a terminal: SIGINT to every process of the foreground group. */
function ctrlC(demo: ReturnType<typeof startDemo>): void {
  process.kill(-demo.child.pid!, 'SIGINT');
}

/** The run id of the cluster `pid` owns (its owner record in /run/meshlet-e2e), once it exists. */
function runOwnedBy(pid: number): string | undefined {
  let files: string[];
  try {
    files = readdirSync('/run/meshlet-e2e');
  } catch {
    return undefined;
  }
  const file = files.find((f) => {
    try {
      return readFileSync(`/run/meshlet-e2e/${f}`, 'utf8').trim() === String(pid);
    } catch {
      return false;
    }
  });
  return file?.replace(/\.pid$/, '');
}

/** The namespaces whose names carry the demo's run id (printed in its header). */
function namespacesOfRun(run: string): string[] {
  const list = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
  return list.split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n.includes(run));
}

async function waitForOutput(demo: ReturnType<typeof startDemo>, text: string): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (!demo.out().includes(text) && Date.now() < deadline && demo.child.exitCode === null) await new Promise((r) => setTimeout(r, 100));
  expect(demo.out(), demo.err()).toContain(text);
}

describe('meshlet demo --pods without root', () => {
  it('exits 2 and says why, and that plain `meshlet demo` needs no root', async () => {
    // Root can only show this by dropping to another uid; setpriv is part of util-linux.
    const asUser = isRoot ? { uid: 1000 } : {};
    if (isRoot && spawnSync('sh', ['-c', 'command -v setpriv']).status !== 0) {
      console.warn('[demo-pods] SKIPPED the non-root refusal test: `setpriv` not found (apt-get install util-linux)');
      return;
    }
    const demo = startDemo(['--pods', '--rounds', '1'], asUser);
    expect(await demo.exited).toBe(2);
    expect(demo.err()).toContain('meshlet demo --pods needs root');
    expect(demo.err()).toContain('plain `meshlet demo`');
    expect(demo.err()).toContain('needs no root');
    expect(demo.out()).toBe('');
  });
});

describe.skipIf(e2eSkipped('meshlet demo --pods'))('meshlet demo --pods', () => {
  it('runs the three services in pods: the apps call by name, calls are allowed and denied by policy, exit 0', async () => {
    const demo = startDemo(['--pods', '--rounds', '1']);
    expect(await demo.exited, demo.err()).toBe(0);
    const out = demo.out();
    const run = /\(run ([0-9a-f]{6});/.exec(out)?.[1];
    expect(run, out).toBeDefined();
    expect(out).toMatch(new RegExp(`frontend\\s+pod mlp-${run}-frontend\\s+10\\.213\\.\\d+\\.\\d+\\s+spiffe://demo\\.local/ns/web/sa/frontend`));
    expect(out).toContain('orders.shop.svc.cluster.local:8080 -> 10.214.');
    // The verified caller identity the app behind saw: mTLS between the pods' sidecars.
    expect(out).toMatch(/frontend -> orders\s+GET \/orders\s+200\s+ALLOW\s+the app saw caller spiffe:\/\/demo\.local\/ns\/web\/sa\/frontend/);
    expect(out).toMatch(/frontend -> orders\s+DELETE \/orders\/7\s+403\s+DENY\s+route=unmatched: no route of server "orders" matches/);
    expect(out).toMatch(/orders\s+-> payments\s+POST \/charge\s+200\s+ALLOW\s+the app saw caller spiffe:\/\/demo\.local\/ns\/shop\/sa\/orders/);
    expect(out).toMatch(/frontend -> payments\s+POST \/charge\s+403\s+DENY\s+route=charge/);
    expect(out).toMatch(new RegExp(`Policy \\(a ConfigMap-style volume[^\\n]*\\n  /tmp/meshlet-e2e-${run}/policy/policy\\.yaml`));
    expect(out).not.toContain('policy reloaded'); // the load at start is not news
    expect(out).toContain('meshlet demo: stopped cleanly.');
    expect(namespacesOfRun(run!)).toEqual([]);
  });

  it('Ctrl-C during start-up still tears down whatever was made, and exits 0', async () => {
    const demo = startDemo(['--pods', '--interval', '500ms']);
    let run: string | undefined;
    const deadline = Date.now() + 120_000;
    // Interrupt once the first pod exists, before the mesh is up.
    while (Date.now() < deadline && demo.child.exitCode === null) {
      run ??= runOwnedBy(demo.child.pid!);
      if (run !== undefined && namespacesOfRun(run).some((n) => n.startsWith('mlp-'))) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(run, demo.err()).toBeDefined();
    expect(demo.out()).not.toContain('Calls (');
    ctrlC(demo);
    expect(await demo.exited, demo.err()).toBe(0);
    expect(demo.out()).toMatch(/meshlet demo: (stopped cleanly|stopped during start-up)\./);
    expect(demo.out()).not.toContain('ALLOW');
    expect(namespacesOfRun(run!)).toEqual([]);
  });

  it('Ctrl-C (SIGINT) while running deletes every pod, the node and their processes, and exits 0', async () => {
    const demo = startDemo(['--pods', '--interval', '500ms']);
    await waitForOutput(demo, 'ALLOW');
    const run = /\(run ([0-9a-f]{6});/.exec(demo.out())?.[1];
    expect(run).toBeDefined();
    // While it runs: the node and the three pods exist.
    expect(namespacesOfRun(run!).sort()).toEqual([`mlnode-${run}`, `mlp-${run}-frontend`, `mlp-${run}-orders`, `mlp-${run}-payments`]);
    ctrlC(demo);
    expect(await demo.exited, demo.err()).toBe(0);
    expect(demo.out()).toContain('meshlet demo: stopped cleanly.');
    expect(namespacesOfRun(run!)).toEqual([]);
    // No process of the demo is left: every sidecar and app ran from this checkout's bin/ or src/dev/demo/.
    const ps = spawnSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).stdout;
    expect(ps.split('\n').filter((l) => l.includes('src/dev/demo/pods-demo-app.ts'))).toEqual([]);
    const links = spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout;
    expect(links).not.toContain(`mlh${run}`);
  });
});
