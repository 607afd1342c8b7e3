// `npm run bench`: what one hop through the mesh costs, next to nginx doing the same job.
// Run `node bench/run.ts --help` for the flags; bench/README.md explains the method.
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { BenchError } from './lib/bench-error.ts';
import { DENIED_PATH } from './lib/bench-policy.ts';
import { costByOwner, formatOwners, formatSelfTime, topSelfTime } from './lib/cpu-profile.ts';
import { checkIssueTargets, type ProcessPeak } from './lib/issue-targets.ts';
import { peakRssBytes, rssBytes } from './lib/process-usage.ts';
import { markdownReport, readmeSummary, runSummary, type BenchResults, type MachineInfo, type SidecarProfile } from './lib/report.ts';
import type { RunOptions } from './lib/run-options.ts';
import type { ScenarioResult } from './lib/figures.ts';
import { latencyChartSvg } from './lib/svg-chart.ts';
import { LoadGenerator } from './lib/load.ts';
import { prepareSidecarRuntime, type SidecarRuntime } from './lib/sidecar-runtime.ts';
import { findNginx, startTopology, type Topology } from './lib/topology.ts';
import { grpcUnary } from './scenarios/grpc-unary.ts';
import { httpFixedRate, httpSaturation } from './scenarios/http-keepalive.ts';
import { idleConnections, MAX_IDLE_CONNECTIONS, type IdleConnectionsResult } from './scenarios/idle-connections.ts';
import { runMicroBenches } from './scenarios/micro.ts';
import { newConnections } from './scenarios/new-connections.ts';
import { soak, type SoakResult } from './scenarios/soak.ts';
import { tcpOpaque } from './scenarios/tcp-opaque.ts';
import { tlsPassthrough } from './scenarios/tls-passthrough.ts';

const HELP = `Usage: npm run bench -- [flags]     (or: node bench/run.ts [flags])

Measures the latency one hop adds — direct vs meshlet (outbound sidecar -> mTLS -> inbound
sidecar) vs an nginx mTLS pair with the same certificates — under autocannon load, opaque TCP
through the same pair vs nginx's stream proxy, the sidecars' memory over a soak and per idle
connection, plus the micro-benchmarks. The sidecars run the production artifact (built first:
npm run build -> dist/bin/meshlet.js) with the Node flags and environment the injector sets. Writes
results.json, results.md and latency.svg to --out, and ends with a one-screen summary of
issue 15's targets.

Flags:
  --quick               everything tiny (1 round, 1 s runs, one rate, micro-benchmarks at their
                        @bench-quick-args sizes; tls-passthrough only when named): proves the pipeline
  --micro               only the micro-benchmarks (every src/**/*.bench.ts and
                        bench/micro/*.ts, each its own process), printed on stdout (no result files)
  --no-micro            skip the micro-benchmarks
  --scenarios LIST      comma-separated subset of: soak, http-rate, http-saturation, new-connections,
                        grpc-unary, tcp-opaque (round trips on persistent connections and new
                        connections), idle-connections, tls-passthrough (the app's own TLS through
                        an iptables-intercepting sidecar, in network-namespace pods: root +
                        iptables, else recorded as skipped; not in --quick unless named)
  --sources             run the sidecars from the TypeScript sources (bin/meshlet.js) instead of
                        the production artifact (dist/bin/meshlet.js, built first); same flags
  --soak-seconds S      length of the soak at 1,000 req/s, after its own warm-up (default 600,
                        warm-up 60; --quick: 20, warm-up 5)
  --idle-connections N  connections held idle per measurement of idle-connections (default 1000,
                        at most ${MAX_IDLE_CONNECTIONS}: the sidecar's per-listener cap is 1,024; --quick: 250)
  --rounds N            interleaved repetitions of every run; medians are reported (default 3)
  --seconds S           length of each measured run (default 5)
  --warmup S            warm-up before each measured run (default 1)
  --rates LIST          fixed rates in req/s for the HTTP keep-alive scenario (default 500,1000,2000)
  --connections N       autocannon keep-alive connections (default 16)
  --concurrency N       callers of the gRPC and new-connection scenarios, connections of tcp-opaque (default 8)
  --metrics on|off      sidecar metrics (off sets MESHLET_REQUEST_METRICS=false; issue 6's comparison)
  --out DIR             where the results go (default bench/results; with --quick a temp directory,
                        never bench/results)
  --profile DIR         run the sidecars with --cpu-prof into DIR; the report lists each one's busy
                        time by owning module (the meshlet module nearest the leaf of each sample:
                        what it calls into, Node included, is its cost) and its top functions by
                        self time (the figures of a profiled run are not comparable)
  --hold                start everything, print endpoints and pids as JSON, wait for Ctrl-C
                        (for strace/perf by hand); measures nothing
  -h, --help            this text

Environment: BENCH_SIDECAR_NODE_ARGS="…" adds node flags to both sidecars (on the command line,
after the injector's flags: they win).
`;

const DEFAULT_OUT = join(import.meta.dirname, 'results');
/** --quick figures only prove the pipeline: they never replace the full run's files in bench/results. */
const QUICK_OUT = join(os.tmpdir(), 'meshlet-bench-quick');
const README = join(import.meta.dirname, 'README.md');
const README_START = '<!-- results:start (written by npm run bench) -->';
const README_END = '<!-- results:end -->';

async function refreshReadme(summary: string): Promise<void> {
  const text = await readFile(README, 'utf8');
  const start = text.indexOf(README_START);
  const end = text.indexOf(README_END);
  if (start < 0 || end < start) return log(`bench/README.md has no ${README_START} … ${README_END} markers: summary not written`);
  await writeFile(README, `${text.slice(0, start + README_START.length)}\n${summary}\n${text.slice(end)}`);
  log('refreshed the results summary in bench/README.md');
}

/** In run order: the soak first, on sidecars fresh from /ready (no earlier load has sized their heaps); idle-connections last (it opens connections on purpose, the peak RSS target is read before it). */
const SCENARIOS = ['soak', 'http-rate', 'http-saturation', 'new-connections', 'grpc-unary', 'tcp-opaque', 'idle-connections', 'tls-passthrough'] as const;
/** The soak's steady rate (issue 15). */
const SOAK_RATE = 1000;
/** Scenarios of the loopback topology (the meshlet pair, nginx, the upstreams); tls-passthrough builds its own pods. */
const LOOPBACK_SCENARIOS: readonly string[] = SCENARIOS.filter((s) => s !== 'tls-passthrough');

/** topology.tlsPassthrough when the scenario was not selected (--quick leaves it out: pods + a sidecar start). */
const TLS_PASSTHROUGH_NOT_SELECTED = 'not measured: scenario tls-passthrough not selected (--scenarios tls-passthrough runs it; --quick leaves it out)';

function usage(message: string): never {
  throw new BenchError('BENCH_USAGE', `${message}\n\n${HELP}`);
}

function positive(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const v = Number(raw);
  if (!Number.isFinite(v) || v <= 0) usage(`--${name} must be a positive number (got ${JSON.stringify(raw)})`);
  return v;
}

function parseFlags(argv: string[]) {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        quick: { type: 'boolean', default: false },
        micro: { type: 'boolean', default: false },
        'no-micro': { type: 'boolean', default: false },
        scenarios: { type: 'string' },
        rounds: { type: 'string' },
        seconds: { type: 'string' },
        warmup: { type: 'string' },
        rates: { type: 'string' },
        connections: { type: 'string' },
        concurrency: { type: 'string' },
        metrics: { type: 'string', default: 'on' },
        sources: { type: 'boolean', default: false },
        'soak-seconds': { type: 'string' },
        'idle-connections': { type: 'string' },
        out: { type: 'string' },
        profile: { type: 'string' },
        hold: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }).values;
  } catch (err) {
    usage((err as Error).message);
  }
  if (parsed.metrics !== 'on' && parsed.metrics !== 'off') usage(`--metrics must be on or off (got ${JSON.stringify(parsed.metrics)})`);
  // --quick leaves tls-passthrough out unless named: it builds network-namespace pods and a sidecar.
  const scenarios = parsed.scenarios ? parsed.scenarios.split(',').map((s) => s.trim()) : SCENARIOS.filter((s) => !(parsed.quick && s === 'tls-passthrough'));
  for (const s of scenarios) if (!(SCENARIOS as readonly string[]).includes(s)) usage(`unknown scenario ${JSON.stringify(s)}; known: ${SCENARIOS.join(', ')}`);
  const quick = parsed.quick;
  const out = parsed.out === undefined ? (quick ? QUICK_OUT : DEFAULT_OUT) : resolve(parsed.out);
  if (quick && out === DEFAULT_OUT) usage('--quick never writes into bench/results (its figures would replace the full run\'s): give another --out');
  const rates = (parsed.rates ?? (quick ? '500' : '500,1000,2000')).split(',').map((r) => positive('rates', r, 0));
  const idle = Math.round(positive('idle-connections', parsed['idle-connections'], quick ? 250 : 1000));
  if (idle > MAX_IDLE_CONNECTIONS) usage(`--idle-connections is at most ${MAX_IDLE_CONNECTIONS} (got ${idle}): the sidecar closes connections beyond its per-listener cap (MESHLET_MAX_INBOUND_CONNECTIONS / MESHLET_MAX_OUTBOUND_CONNECTIONS, 1,024 by default, pooled peer connections included)`);
  return {
    help: parsed.help,
    quick,
    microOnly: parsed.micro,
    micro: !parsed['no-micro'],
    metrics: parsed.metrics === 'on',
    out,
    profileDir: parsed.profile ?? null,
    hold: parsed.hold,
    sources: parsed.sources,
    scenarios: new Set(scenarios),
    soak: {
      rate: SOAK_RATE,
      seconds: positive('soak-seconds', parsed['soak-seconds'], quick ? 20 : 600),
      // 30–60 s of the same load first (issue 15): the JIT settled, the pools and the heap sized for the load.
      warmupSeconds: quick ? 5 : 60,
    },
    idle: {
      connections: idle,
      // Long enough for the last handshakes' garbage to be young garbage; far below the sidecar's 60 s idle timeout.
      settleSeconds: quick ? 2 : 5,
    },
    run: {
      rounds: Math.round(positive('rounds', parsed.rounds, quick ? 1 : 3)),
      seconds: positive('seconds', parsed.seconds, quick ? 1 : 5),
      warmupSeconds: positive('warmup', parsed.warmup, quick ? 0.5 : 1),
      primeFirstRound: !quick,
      rates,
      connections: Math.round(positive('connections', parsed.connections, 16)),
      concurrency: Math.round(positive('concurrency', parsed.concurrency, 8)),
      // ≤ 500 samples/s: enough for p99.9 over a 5 s run, small next to the load (same pace for every target).
      samplerIntervalMs: 2,
    },
  };
}

const t0 = Date.now();
function log(line: string): void {
  process.stderr.write(`[bench ${((Date.now() - t0) / 1000).toFixed(0).padStart(4)}s] ${line}\n`);
}

function machineInfo(): MachineInfo {
  const path = findNginx();
  // `nginx -v` prints its version on stderr.
  const nginx = path ? spawnSync(path, ['-v'], { encoding: 'utf8' }).stderr.trim().replace(/^nginx version: /, '') || 'nginx' : null;
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cpus: cpus.length,
    memoryGb: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    node: process.version,
    nginx,
    note: 'The load generator, the sampler, the proxies and the upstreams share these cores; other work on the machine (other test suites) runs at the same time. Compare targets within one run, not across machines.',
  };
}

/** One request to a path the policy closes: the meshlet pair must answer 403, proof the policy is enforced. */
async function checkPolicyEnforced(t: Topology): Promise<number> {
  const status = await deniedStatus(t);
  log(`policy check through meshlet: GET ${DENIED_PATH} -> ${status}${status === 403 ? ' (denied: policy enforced)' : ''}`);
  if (status !== 403) {
    throw new BenchError('BENCH_POLICY_NOT_ENFORCED', `GET ${DENIED_PATH} through the meshlet pair answered ${status}, not 403: the server pod's policy closes that route, so the pair is not running as a pod would and its figures would mean nothing`);
  }
  return status;
}

function deniedStatus(t: Topology): Promise<number> {
  const m = t.http.find((x) => x.name === 'meshlet')!;
  return new Promise((resolve, reject) => {
    const req = http.get({ host: m.endpoint.host, port: m.endpoint.port, path: DENIED_PATH, headers: { host: m.endpoint.hostHeader }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
  });
}

/** Every figure is written first; then a failed micro-benchmark makes the run fail, by name. */
function microFailures(micro: BenchResults['micro']): number {
  const failed = micro?.benches.filter((b) => !b.ok) ?? [];
  if (failed.length === 0) return 0;
  process.stderr.write(`bench: BENCH_MICRO_FAILED: ${failed.map((b) => `${b.file} (${b.exit})`).join(', ')}\n`);
  return 1;
}

async function readProfiles(dir: string, roles: Record<number, string>): Promise<SidecarProfile[]> {
  const out: SidecarProfile[] = [];
  for (const f of (await readdir(dir)).filter((n) => n.endsWith('.cpuprofile'))) {
    const role = roles[Number(f.split('.')[3])];
    if (!role) continue;
    const file = join(dir, f);
    out.push({ process: role, file, owners: formatOwners(costByOwner(file, 25)), top: formatSelfTime(topSelfTime(file, 30)) });
  }
  if (out.length === 0) log(`--profile: no sidecar profile in ${dir} (a sidecar killed before it exited writes none)`);
  return out;
}

async function main(): Promise<number> {
  const flags = parseFlags(process.argv.slice(2));
  if (flags.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const options: RunOptions = { ...flags.run, log };
  const machine = machineInfo();
  log(`node ${machine.node}, ${machine.cpus} CPUs, ${machine.nginx ?? 'nginx missing'}${flags.quick ? ', --quick' : ''}`);

  const scenarios: ScenarioResult[] = [];
  const peaks: ProcessPeak[] = [];
  let topology: Topology | null = null;
  let topologyInfo: BenchResults['topology'] = { upstream: 'not started (--micro)', nginx: 'not started (--micro)', nginxStream: 'not started (--micro)', tlsPassthrough: TLS_PASSTHROUGH_NOT_SELECTED, meshlet: { note: 'not started (--micro)', runtime: 'not started (--micro)', policyCheck: null } };
  let profiles: SidecarProfile[] | null = null;
  let soakResult: SoakResult | null = null;
  let idleResult: IdleConnectionsResult | null = null;
  const work = await mkdtemp(join(os.tmpdir(), 'meshlet-bench-'));
  const stopAll = async () => {
    await topology?.stop();
    topology = null;
    await rm(work, { recursive: true, force: true });
  };
  if (!flags.hold) process.once('SIGINT', () => void stopAll().then(() => process.exit(130)));
  try {
    const loopback = flags.hold || [...flags.scenarios].some((s) => LOOPBACK_SCENARIOS.includes(s));
    // Every sidecar the bench starts (the loopback pair, the passthrough pod's) runs what the injected container runs.
    const runtime: SidecarRuntime | null = !flags.microOnly && (loopback || flags.scenarios.has('tls-passthrough')) ? prepareSidecarRuntime({ sources: flags.sources, log }) : null;
    if (!flags.microOnly && !loopback) {
      topologyInfo = { upstream: 'not started (no loopback scenario selected)', nginx: 'not started (no loopback scenario selected)', nginxStream: 'not started (no loopback scenario selected)', tlsPassthrough: TLS_PASSTHROUGH_NOT_SELECTED, meshlet: { note: 'not started (no loopback scenario selected)', runtime: runtime?.note ?? 'not started', policyCheck: null } };
    }
    if (runtime && loopback) {
      const sidecarNodeArgs = (process.env.BENCH_SIDECAR_NODE_ARGS ?? '').split(' ').filter(Boolean);
      if (flags.profileDir) {
        await mkdir(flags.profileDir, { recursive: true });
        sidecarNodeArgs.push('--cpu-prof', `--cpu-prof-dir=${flags.profileDir}`);
      }
      topology = await startTopology({ work, metrics: flags.metrics, sidecarRuntime: runtime, sidecarNodeArgs, log });
      const status = await checkPolicyEnforced(topology);
      topologyInfo = {
        upstream: topology.upstream.note,
        nginx: topology.nginx.note,
        nginxStream: topology.nginxStream.note,
        tlsPassthrough: TLS_PASSTHROUGH_NOT_SELECTED,
        meshlet: { note: topology.meshlet.note, runtime: topology.meshlet.runtime, policyCheck: { path: DENIED_PATH, status } },
      };
      if (flags.hold) {
        const { http, grpc, connect, tcp } = topology;
        const strip = <T extends { procs: unknown }>(xs: T[]) => xs.map(({ procs, ...rest }) => ({ ...rest, pids: procs }));
        process.stdout.write(`${JSON.stringify({ meshlet: topology.meshlet, http: strip(http), grpc: strip(grpc), connect: strip(connect), tcp: strip(tcp), nginxStream: topology.nginxStream }, null, 2)}\n`);
        log('--hold: everything is up; Ctrl-C stops it');
        await new Promise((resolve) => process.once('SIGINT', resolve));
        return 0;
      }
      // Every proxy process once, named by target and role; VmHWM and VmRSS are read after each
      // scenario so the report shows in which scenario the memory peak was reached, and what
      // each process holds once a load stops.
      const watched = new Map<number, ProcessPeak>();
      const watch = (pid: number, process: string) => watched.set(pid, { process, peakRssBytes: 0, atReadyBytes: 0, idleRssBytes: 0, afterScenario: {}, rssAfterScenario: {} });
      for (const t of [...topology.http, ...topology.connect]) for (const p of t.procs) if (!watched.has(p.pid)) watch(p.pid, `${t.name}/${p.role}`);
      for (const t of topology.grpc.filter((g) => g.name === 'nginx')) for (const p of t.procs) watch(p.pid, `nginx-grpc/${p.role}`);
      for (const t of topology.tcp.filter((g) => g.name === 'nginx')) for (const p of t.procs) watch(p.pid, `nginx-stream/${p.role}`);
      for (const [pid, peak] of watched) {
        peak.atReadyBytes = peakRssBytes(pid);
        peak.idleRssBytes = rssBytes(pid);
      }
      const recordMemory = (id: string) => {
        for (const [pid, peak] of watched) {
          // A proxy that died mid-run is the finding, not a missing /proc file.
          if (!existsSync(`/proc/${pid}/status`)) throw new BenchError('BENCH_PROCESS_EXITED', `${peak.process} (pid ${pid}) exited during scenario ${id}`);
          peak.peakRssBytes = peakRssBytes(pid);
          peak.afterScenario[id] = peak.peakRssBytes;
          peak.rssAfterScenario[id] = rssBytes(pid);
        }
      };
      const done = (s: ScenarioResult) => {
        scenarios.push(s);
        recordMemory(s.id);
      };
      const meshletHttp = topology.http.find((t) => t.name === 'meshlet')!;
      const load = new LoadGenerator();
      try {
        if (flags.scenarios.has('soak')) {
          soakResult = await soak(meshletHttp, options, load, flags.soak);
          recordMemory('soak');
        }
        if (flags.scenarios.has('http-rate')) for (const rate of options.rates) done(await httpFixedRate(topology.http, options, load, rate));
        if (flags.scenarios.has('http-saturation')) done(await httpSaturation(topology.http, options, load));
      } finally {
        load.close();
      }
      if (flags.scenarios.has('new-connections')) {
        done(await newConnections(topology.connect, options));
        done(await newConnections(topology.connect, options, true));
      }
      if (flags.scenarios.has('grpc-unary')) done(await grpcUnary(topology.grpc, options));
      if (flags.scenarios.has('tcp-opaque')) for (const s of await tcpOpaque(topology.tcp, options, topology.nginxStream.note)) done(s);
      if (flags.scenarios.has('idle-connections')) {
        idleResult = await idleConnections(topology.http, topology.connect, options, flags.idle.connections, flags.idle.settleSeconds);
        recordMemory('idle-connections');
      }
      peaks.push(...watched.values());
      const pids = topology.meshlet.pids;
      await topology.stop();
      topology = null;
      // A sidecar writes its profile when it exits, named CPU.<date>.<time>.<pid>.<tid>.<n>.cpuprofile.
      if (flags.profileDir) profiles = await readProfiles(flags.profileDir, { [pids.client]: 'meshlet/outbound', [pids.server]: 'meshlet/inbound' });
    }
    // After the loopback topology is stopped: its idle processes must not share the cores.
    if (runtime && flags.scenarios.has('tls-passthrough')) {
      const passthrough = await tlsPassthrough({ ...options, metrics: flags.metrics, runtime });
      topologyInfo.tlsPassthrough = passthrough.note;
      scenarios.push(...passthrough.scenarios);
      if (passthrough.peak) peaks.push(passthrough.peak);
    }
    const micro = flags.micro || flags.microOnly ? await runMicroBenches({ quick: flags.quick, log }) : null;

    const midRate = options.rates[Math.floor((options.rates.length - 1) / 2)]!;
    // Issue 15's CPU target is judged on the middle fixed rate: below saturation for every target.
    const headline = scenarios.some((s) => s.id === `http-rate-${midRate}`) ? `http-rate-${midRate}` : (scenarios.find((s) => s.id.startsWith('http-rate-'))?.id ?? 'none');
    const results: BenchResults = {
      generatedAt: new Date().toISOString(),
      quick: flags.quick,
      machine,
      settings: { ...flags.run, metrics: flags.metrics ? 'on' : 'off', sidecars: flags.sources ? 'sources' : 'artifact', scenarios: [...flags.scenarios], soak: flags.soak, idleConnections: flags.idle },
      topology: topologyInfo,
      headline,
      scenarios: Object.fromEntries(scenarios.map((s) => [s.id, s])),
      soak: soakResult,
      idleConnections: idleResult,
      peakRss: peaks,
      issueTargets: checkIssueTargets(scenarios, headline, peaks, { soak: soakResult, idle: idleResult }),
      micro,
      profiles,
    };
    const md = markdownReport(results);
    if (flags.microOnly) {
      // Only printed: a micro-only run must never replace the full run's result files.
      process.stdout.write(md);
      return microFailures(micro);
    }
    await mkdir(flags.out, { recursive: true });
    await writeFile(join(flags.out, 'results.json'), JSON.stringify(results, null, 2) + '\n');
    await writeFile(join(flags.out, 'results.md'), md);
    await writeFile(join(flags.out, 'latency.svg'), latencyChartSvg(scenarios, `${results.generatedAt.slice(0, 16)}Z · ${machine.cpus} × ${machine.cpuModel} · node ${machine.node} · medians of ${options.rounds} runs · meshlet: two sidecar processes`));
    process.stdout.write(md);
    // A full run into bench/results refreshes the README's summary, so the two never disagree.
    if (!flags.quick && flags.out === DEFAULT_OUT) await refreshReadme(readmeSummary(results));
    log(`wrote ${join(flags.out, 'results.json')}, results.md, latency.svg`);
    const exit = microFailures(micro);
    // The last thing on the terminal: every target, met or not, on one screen.
    process.stdout.write(`\n${runSummary(results)}`);
    return exit;
  } finally {
    await stopAll();
  }
}

try {
  process.exitCode = await main();
} catch (err) {
  process.stderr.write(`bench: ${err instanceof BenchError ? `${err.code}: ` : ''}${(err as Error).message}\n`);
  process.exitCode = err instanceof BenchError && err.code === 'BENCH_USAGE' ? 2 : 1;
}
