// gRPC unary latency one hop through the mesh vs direct, for docs/proxy.md.
//
//   node bench/hop/grpc.ts [--calls 3000] [--rounds 3]
//
// A @grpc/grpc-js server (its own process), the meshlet pair (outbound and inbound sidecar,
// one process each, real MeshTls, stand-in policy asked on every stream) and a grpc-js client
// here making ONE call at a time (hrtime around each call). Direct and mesh runs are
// interleaved, repeated, and the medians of each round's p50/p99 reported.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ordersClient, startOrdersServer, unary, type OrdersClient } from '../../test/integration/proxy/support/grpc-orders.ts';
import { cpuSeconds } from './cpu.ts';
import { BENCH_IDS, writeBenchPki } from './pki.ts';
import type { SidecarSpec } from './sidecar-process.ts';

if (process.argv[2] === '--serve') {
  const { port } = await startOrdersServer();
  process.stdout.write(`ready ${port}\n`);
} else {
  await main();
}

async function main(): Promise<void> {
  const { values: flags } = parseArgs({ options: { calls: { type: 'string', default: '3000' }, rounds: { type: 'string', default: '3' } } });
  const calls = Number(flags.calls);
  const rounds = Number(flags.rounds);
  const MESH_AUTHORITY = 'server.bench.svc.cluster.local:8080';
  const children: ChildProcess[] = [];
  const work = await mkdtemp(join(tmpdir(), 'meshlet-grpc-hop-'));
  try {
    const pki = await writeBenchPki(join(work, 'pki'));
    const server = spawn(process.execPath, [import.meta.filename, '--serve'], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(server);
    const appPort = Number((await firstLine(server)).split(' ')[1]);
    const [inPort, outPort] = [await freePort(), await freePort()];
    const start = (spec: SidecarSpec): ChildProcess => {
      // HOP_NODE_ARGS="--cpu-prof --cpu-prof-dir=DIR" profiles the sidecars (as in run.ts).
      const nodeArgs = (process.env.HOP_NODE_ARGS ?? '').split(' ').filter(Boolean);
      const c = spawn(process.execPath, [...nodeArgs, join(import.meta.dirname, 'sidecar-process.ts'), JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'inherit'] });
      children.push(c);
      return c;
    };
    const inbound = start({ role: 'inbound', files: pki.server, listenPort: inPort, appPort });
    const outbound = start({ role: 'outbound', files: pki.client, listenPort: outPort, destHost: 'server.bench.svc.cluster.local', destPort: 8080, peerPort: inPort, peerId: BENCH_IDS.server });
    await Promise.all([firstLine(inbound), firstLine(outbound)]);

    const direct = ordersClient(appPort, 'orders');
    const mesh = ordersClient(outPort, MESH_AUTHORITY);
    // Warm up both paths (connections, sessions, JIT).
    await loop(direct, 500);
    await loop(mesh, 500);
    const results: Record<'direct' | 'meshlet', { p50: number[]; p99: number[] }> = { direct: { p50: [], p99: [] }, meshlet: { p50: [], p99: [] } };
    const sidecarCpu = { outbound: 0, inbound: 0 };
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? (['direct', 'meshlet'] as const) : (['meshlet', 'direct'] as const);
      for (const name of order) {
        const cpu0 = name === 'meshlet' ? [cpuSeconds(outbound.pid!), cpuSeconds(inbound.pid!)] : null;
        const lat = await loop(name === 'direct' ? direct : mesh, calls);
        if (cpu0 !== null) {
          sidecarCpu.outbound += cpuSeconds(outbound.pid!) - cpu0[0]!;
          sidecarCpu.inbound += cpuSeconds(inbound.pid!) - cpu0[1]!;
        }
        lat.sort((a, b) => a - b);
        results[name].p50.push(lat[Math.floor(lat.length * 0.5)]!);
        results[name].p99.push(lat[Math.floor(lat.length * 0.99)]!);
      }
    }
    direct.close();
    mesh.close();
    const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
    const d50 = med(results.direct.p50);
    const m50 = med(results.meshlet.p50);
    const d99 = med(results.direct.p99);
    const m99 = med(results.meshlet.p99);
    console.log(`gRPC unary, 1 call in flight, ${calls} calls x ${rounds} rounds (medians of per-round percentiles), node ${process.version}`);
    console.log(`| target | p50 µs | p99 µs |`);
    console.log(`|---|---|---|`);
    console.log(`| direct | ${d50.toFixed(0)} | ${d99.toFixed(0)} |`);
    console.log(`| meshlet pair | ${m50.toFixed(0)} | ${m99.toFixed(0)} |`);
    console.log(`| added | ${(m50 - d50).toFixed(0)} | ${(m99 - d99).toFixed(0)} |`);
    const perK = (s: number): string => ((s / (calls * rounds)) * 1000).toFixed(3);
    console.log(`CPU seconds per 1,000 calls: outbound ${perK(sidecarCpu.outbound)}, inbound ${perK(sidecarCpu.inbound)}`);
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await rm(work, { recursive: true, force: true });
  }
}

async function loop(client: OrdersClient, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await unary(client, 'Get', { id: i });
    out.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  return out;
}

function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (c: Buffer) => {
      buf += c.toString();
      const nl = buf.indexOf('\n');
      if (nl !== -1) resolve(buf.slice(0, nl));
    });
    child.once('exit', (code) => reject(new Error(`child exited (${code}) before it was ready`)));
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}
