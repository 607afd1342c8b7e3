// Issue 11, item 1: at the file-descriptor limit legitimate mTLS requests got no answer and SVID
// rotation and policy reload failed with EMFILE. A real `meshlet sidecar` process with a low
// open-files limit (`ulimit -n`, as a container's nofile) lowers its connection caps so that
// they, the admin port and MESHLET_FD_RESERVE fit; with every data-plane listener flooded to its
// cap, the admin port answers, a new policy is loaded and a new SVID is picked up. A limit that
// cannot hold the reserve refuses the start with one line.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubeletWrite } from '../../support/kubelet-volume.ts';
import { meshOfTwo, ORDERS_ID, ordersPolicy, svidFiles, type MeshOfTwo } from '../sidecar/mesh-of-two.ts';
import { attack, eventually, type Attack } from './support/half-open.ts';

const BIN = fileURLToPath(new URL('../../../bin/meshlet.js', import.meta.url));
const OPEN_FILES = 700;

let mesh: MeshOfTwo;
beforeAll(async () => {
  mesh = await meshOfTwo();
});
afterAll(async () => {
  await mesh?.close();
});

/** `meshlet sidecar` under an open-files limit (soft and hard: node raises its soft limit to the hard one at start). */
function sidecarWithOpenFiles(limit: number, env: Record<string, string>): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn('/bin/sh', ['-c', `ulimit -n ${limit} && exec "$0" "$1" sidecar`, process.execPath, BIN], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

async function metrics(adminPort: number): Promise<string> {
  return (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
}

/** One sample of the exposition text, by its exact series (name{labels}); undefined if absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('descriptor exhaustion: connection caps leave headroom for rotation, reload and the admin port', () => {
  it(`under RLIMIT_NOFILE ${OPEN_FILES}, caps are lowered; flooded to the caps, the admin port answers, a policy reloads and an SVID rotates`, async () => {
    const p = sidecarWithOpenFiles(OPEN_FILES, {
      ...mesh.ordersEnv,
      MESHLET_LOG_LEVEL: 'info',
      // The flood's silent connections must stay open while the test looks.
      MESHLET_TLS_HANDSHAKE_TIMEOUT: '120s',
      MESHLET_REQUEST_HEADERS_TIMEOUT: '120s',
    });
    const held: Attack[] = [];
    try {
      await eventually(() => p.output().includes('meshlet sidecar: ready') || p.child.exitCode !== null, 'the sidecar to be ready', 60_000);
      expect(p.output()).toContain('meshlet sidecar: ready');
      expect(p.output()).toContain('"event":"connection_caps_lowered"');

      const admin = mesh.ports.ordersAdmin;
      const tcpListenPort = Number(/:(\d+)\/tcp/.exec(mesh.ordersEnv.MESHLET_INBOUND_PORTS!)![1]);
      const before = await metrics(admin);
      const caps = {
        inbound: sample(before, 'meshlet_listener_max_connections{listener="inbound"}')!,
        inbound_tcp: sample(before, 'meshlet_listener_max_connections{listener="inbound_tcp"}')!,
        outbound: sample(before, 'meshlet_listener_max_connections{listener="outbound"}')!,
        admin: sample(before, 'meshlet_listener_max_connections{listener="admin"}')!,
      };
      // Lowered from the 1024 default, and the sum (two descriptors per proxied connection, the
      // admin port's, the reserve) fits the limit.
      expect(caps.inbound).toBeLessThan(1024);
      expect(caps.admin).toBe(64);
      expect((caps.inbound + caps.inbound_tcp + caps.outbound) * 2 + caps.admin * 2 + 256).toBeLessThanOrEqual(OPEN_FILES);

      // Every data-plane listener flooded to its cap, and past it.
      for (const [listener, port] of [['inbound', mesh.ports.ordersInbound], ['inbound_tcp', tcpListenPort], ['outbound', mesh.ports.ordersOutbound]] as const) {
        for (let i = 0; i < caps[listener] + 2; i++) held.push(await attack(port));
        await eventually(async () => (sample(await metrics(admin), `meshlet_listener_refused_connections_total{listener="${listener}",reason="limit"}`) ?? 0) >= 2, `${listener} to refuse past its cap`);
      }

      // The admin port still answers.
      expect((await fetch(`http://127.0.0.1:${admin}/ready`)).status).toBe(200);

      // A policy reload still opens and reads its files.
      const reloadsBefore = sample(await metrics(admin), 'meshlet_policy_reloads_total{result="ok"}')!;
      await kubeletWrite(mesh.ordersPolicyDir, { 'policy.yaml': `${ordersPolicy(mesh.appPort, mesh.tcpAppPort)}# reloaded under a flood\n` });
      await eventually(async () => sample(await metrics(admin), 'meshlet_policy_reloads_total{result="ok"}')! > reloadsBefore, 'the new policy to be loaded');

      // An SVID rotation still reads the new files.
      const rotationsBefore = sample(await metrics(admin), 'meshlet_identity_rotations_total')!;
      await kubeletWrite(mesh.ordersSvidDir, await svidFiles(mesh.ca, ORDERS_ID));
      await eventually(async () => sample(await metrics(admin), 'meshlet_identity_rotations_total')! > rotationsBefore, 'the new SVID to be picked up');
      expect(p.output()).not.toContain('EMFILE');
    } finally {
      for (const a of held) a.socket.destroy();
      if (p.child.exitCode === null) p.child.kill('SIGTERM');
      await p.exited;
    }
  });

  it('refuses to start, in one line, when the open-files limit cannot hold the reserve', async () => {
    const p = sidecarWithOpenFiles(300, mesh.ordersEnv);
    expect(await p.exited).toBe(1);
    const lines = p.output().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^meshlet sidecar: MESHLET_FD_LIMIT_TOO_LOW: the open-files limit \(RLIMIT_NOFILE\) is 300: /);
  });
});
