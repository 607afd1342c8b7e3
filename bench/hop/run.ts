// The hop bench: what one hop through the mesh adds, next to nginx doing the same job.
//
//   node bench/hop/run.ts [--seconds 5] [--rounds 3] [--connections 1,16] [--only meshlet,nginx]
//   HOP_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" node bench/hop/run.ts ...   (profile the sidecars)
//   HOP_VARIANT_ARGS="--max-semi-space-size=32" node bench/hop/run.ts ...  (A/B: a second meshlet
//     pair with these node flags, measured interleaved with the first, reported as meshlet-b)
//
// Starts an nginx upstream (1 KB body), the meshlet pair (outbound sidecar -> mTLS -> inbound
// sidecar, one process each) and an nginx mTLS pair with the same certificates, then runs wrk
// against direct / meshlet / nginx, interleaved, for several rounds, and reports medians.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BENCH_IDS, writeBenchPki } from './pki.ts';
import { nginxInboundConf, nginxOutboundConf, startNginx, upstreamConf } from './nginx.ts';
import { runWrk, type WrkResult } from './wrk.ts';
import { cpuSeconds, rssBytes } from './cpu.ts';
import type { SidecarSpec } from './sidecar-process.ts';

const { values: flags } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '3' },
    connections: { type: 'string', default: '1,16' },
    out: { type: 'string', default: join(import.meta.dirname, 'results') },
    // Start everything, print ports and pids, and wait (for strace/perf by hand) until SIGINT.
    hold: { type: 'boolean', default: false },
  },
});
const seconds = Number(flags.seconds);
const rounds = Number(flags.rounds);
const connectionCounts = flags.connections!.split(',').map(Number);
const MESH_HOST = 'server.bench.svc.cluster.local';
const MESH_PORT = 8080;

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

async function waitForPort(port: number): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function startSidecar(spec: SidecarSpec, extraArgs = ''): ChildProcess {
  const nodeArgs = `${process.env.HOP_NODE_ARGS ?? ''} ${extraArgs}`.split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, join(import.meta.dirname, 'sidecar-process.ts'), JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'inherit'] });
  return child;
}

interface Target {
  name: 'direct' | 'meshlet' | 'meshlet-b' | 'nginx';
  url: string;
  host?: string;
  procs: { name: string; pid: number }[];
}

interface Sample extends WrkResult {
  cpu: Record<string, number>;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

const work = await mkdtemp(join(tmpdir(), 'meshlet-hop-'));
const children: ChildProcess[] = [];
try {
  const pki = await writeBenchPki(join(work, 'pki'));
  const [up, mo, mi, no, ni] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  const nginxDir = join(work, 'nginx');
  await mkdir(nginxDir, { recursive: true });
  const upstream = await startNginx(nginxDir, 'upstream', upstreamConf(nginxDir, up!));
  const nginxIn = await startNginx(nginxDir, 'nginx-in', nginxInboundConf(nginxDir, ni!, up!, pki.server));
  const nginxOut = await startNginx(nginxDir, 'nginx-out', nginxOutboundConf(nginxDir, no!, ni!, pki.client));
  const meshIn = startSidecar({ role: 'inbound', files: pki.server, listenPort: mi!, appPort: up! });
  const meshOut = startSidecar({ role: 'outbound', files: pki.client, listenPort: mo!, destHost: MESH_HOST, destPort: MESH_PORT, peerPort: mi!, peerId: BENCH_IDS.server });
  children.push(upstream, nginxIn, nginxOut, meshIn, meshOut);
  await Promise.all([up, mo, mi, no, ni].map((p) => waitForPort(p!)));
  const variantArgs = process.env.HOP_VARIANT_ARGS;
  let variant: Target | null = null;
  if (variantArgs) {
    const [bo, bi] = await Promise.all([freePort(), freePort()]);
    const bIn = startSidecar({ role: 'inbound', files: pki.server, listenPort: bi!, appPort: up! }, variantArgs);
    const bOut = startSidecar({ role: 'outbound', files: pki.client, listenPort: bo!, destHost: MESH_HOST, destPort: MESH_PORT, peerPort: bi!, peerId: BENCH_IDS.server }, variantArgs);
    children.push(bIn, bOut);
    await Promise.all([bo, bi].map((p) => waitForPort(p!)));
    variant = { name: 'meshlet-b', url: `http://127.0.0.1:${bo}/`, host: `${MESH_HOST}:${MESH_PORT}`, procs: [{ name: 'outbound', pid: bOut.pid! }, { name: 'inbound', pid: bIn.pid! }] };
    process.stderr.write(`meshlet-b: node flags ${variantArgs}\n`);
  }

  const targets: Target[] = [
    { name: 'direct', url: `http://127.0.0.1:${up}/`, procs: [] },
    { name: 'meshlet', url: `http://127.0.0.1:${mo}/`, host: `${MESH_HOST}:${MESH_PORT}`, procs: [{ name: 'outbound', pid: meshOut.pid! }, { name: 'inbound', pid: meshIn.pid! }] },
    { name: 'nginx', url: `http://127.0.0.1:${no}/`, procs: [{ name: 'outbound', pid: nginxOut.pid! }, { name: 'inbound', pid: nginxIn.pid! }] },
    ...(variant ? [variant] : []),
  ];
  process.stderr.write(`node ${process.version}, nginx upstream on ${up}; meshlet ${mo}->${mi}; nginx ${no}->${ni}\n`);

  if (flags.hold) {
    process.stdout.write(`${JSON.stringify(targets)}\n`);
    await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
  } else {
    await measure(targets);
  }
} finally {
  for (const c of children) c.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 300));
  await rm(work, { recursive: true, force: true });
}

async function measure(targets: Target[]): Promise<void> {
  for (const t of targets) {
    const warm = await runWrk(t.url, { connections: 4, seconds: 2, ...(t.host ? { host: t.host } : {}) });
    if (warm.requests === 0 || warm.errors > 0) throw new Error(`${t.name} warm-up failed: ${JSON.stringify(warm)}`);
  }

  const samples = new Map<string, Sample[]>();
  for (let round = 0; round < rounds; round++) {
    for (const c of connectionCounts) {
      // Rotate the order each round so drift hits every target alike.
      const order = targets.map((_, i) => targets[(i + round) % targets.length]!);
      for (const t of order) {
        const before = t.procs.map((p) => cpuSeconds(p.pid));
        const r = await runWrk(t.url, { connections: c, seconds, ...(t.host ? { host: t.host } : {}) });
        const cpu: Record<string, number> = {};
        t.procs.forEach((p, i) => (cpu[p.name] = ((cpuSeconds(p.pid) - before[i]!) / Math.max(1, r.requests)) * 1000));
        const key = `${t.name}/c${c}`;
        (samples.get(key) ?? samples.set(key, []).get(key)!).push({ ...r, cpu });
        process.stderr.write(`round ${round + 1}/${rounds} c=${c} ${t.name.padEnd(7)} p50 ${r.p50us.toFixed(0)}us p99 ${r.p99us.toFixed(0)}us ${r.requestsPerSec.toFixed(0)} req/s errors ${r.errors}\n`);
      }
    }
  }

  const rss: Record<string, number> = {};
  for (const t of targets) for (const p of t.procs) rss[`${t.name}/${p.name}`] = rssBytes(p.pid);

  const summary = connectionCounts.map((c) => {
    const row = (name: string) => {
      const s = samples.get(`${name}/c${c}`)!;
      const cpuNames = Object.keys(s[0]!.cpu);
      return {
        p50us: median(s.map((x) => x.p50us)),
        p99us: median(s.map((x) => x.p99us)),
        requestsPerSec: median(s.map((x) => x.requestsPerSec)),
        errors: s.reduce((a, x) => a + x.errors, 0),
        cpuSecondsPer1kRequests: Object.fromEntries(cpuNames.map((n) => [n, median(s.map((x) => x.cpu[n]!))])),
      };
    };
    const direct = row('direct');
    const meshlet = row('meshlet');
    const meshletB = targets.some((t) => t.name === 'meshlet-b') ? row('meshlet-b') : null;
    const nginx = row('nginx');
    const added = (r: typeof direct) => ({ p50us: r.p50us - direct.p50us, p99us: r.p99us - direct.p99us });
    return {
      connections: c,
      direct,
      meshlet: { ...meshlet, added: added(meshlet) },
      ...(meshletB ? { 'meshlet-b': { ...meshletB, added: added(meshletB) } } : {}),
      nginx: { ...nginx, added: added(nginx) },
      ratios: {
        addedP50: added(meshlet).p50us / added(nginx).p50us,
        addedP99: added(meshlet).p99us / added(nginx).p99us,
        requestsPerSec: meshlet.requestsPerSec / nginx.requestsPerSec,
      },
    };
  });

  const lines = [
    `| conns | target | p50 µs | p99 µs | added p50 µs | added p99 µs | req/s | CPU s / 1k req (out, in) |`,
    `|---|---|---|---|---|---|---|---|`,
  ];
  for (const s of summary) {
    const fmtCpu = (r: { cpuSecondsPer1kRequests: Record<string, number> }) => Object.values(r.cpuSecondsPer1kRequests).map((v) => v.toFixed(3)).join(', ') || '—';
    lines.push(`| ${s.connections} | direct | ${s.direct.p50us.toFixed(0)} | ${s.direct.p99us.toFixed(0)} | — | — | ${s.direct.requestsPerSec.toFixed(0)} | — |`);
    for (const name of ['meshlet', 'meshlet-b', 'nginx'] as const) {
      const r = s[name];
      if (r === undefined) continue;
      lines.push(`| ${s.connections} | ${name} | ${r.p50us.toFixed(0)} | ${r.p99us.toFixed(0)} | ${r.added.p50us.toFixed(0)} | ${r.added.p99us.toFixed(0)} | ${r.requestsPerSec.toFixed(0)} | ${fmtCpu(r)} |`);
    }
    lines.push(`| ${s.connections} | meshlet/nginx | | | ${s.ratios.addedP50.toFixed(2)}x | ${s.ratios.addedP99.toFixed(2)}x | ${s.ratios.requestsPerSec.toFixed(2)}x | |`);
  }
  const rssLine = `RSS after the runs: ${Object.entries(rss).map(([k, v]) => `${k} ${(v / 1048576).toFixed(1)} MB`).join(', ')}`;
  const report = `${lines.join('\n')}\n\n${rssLine}\n\nwrk -t1, ${seconds} s per run, ${rounds} rounds interleaved, medians; upstream: nginx returning a 1 KB body; node ${process.version}.\n`;
  process.stdout.write(report);
  await mkdir(flags.out!, { recursive: true });
  await writeFile(join(flags.out!, 'latest.json'), JSON.stringify({ date: new Date().toISOString(), node: process.version, seconds, rounds, summary, rss, samples: Object.fromEntries(samples) }, null, 2));
  await writeFile(join(flags.out!, 'latest.md'), report);
}
