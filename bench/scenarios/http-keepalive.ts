import type { LoadGenerator } from '../lib/load.ts';
import { HttpSampler } from '../lib/http-sampler.ts';
import { cpuPer1k, cpuSnapshot } from '../lib/process-usage.ts';
import { compareTargets, summarizeRuns, type RunSample, type ScenarioResult } from '../lib/figures.ts';
import { interleave } from '../lib/interleave.ts';
import { BenchError } from '../lib/bench-error.ts';
import type { RunOptions } from '../lib/run-options.ts';
import type { HttpTarget } from '../lib/topology.ts';

/**
 * HTTP/1.1 keep-alive, 1 KB body. autocannon makes the load (fixed rate with coordinated
 * omission corrected, or closed loop to saturation) in its own process; beside it the µs
 * sampler times one request at a time on its own connection — the latency figures of the
 * report. autocannon's whole-millisecond percentiles are kept too, labelled.
 */
async function loadAndSample(t: HttpTarget, o: RunOptions, load: LoadGenerator, seconds: number, overallRate: number | undefined): Promise<RunSample> {
  const sampler = new HttpSampler(t.endpoint);
  const signal = { stopped: false };
  const before = cpuSnapshot(t.procs);
  const sampling = sampler.run(o.samplerIntervalMs, signal);
  try {
    const figures = await load.run({
      url: `http://${t.endpoint.host}:${t.endpoint.port}${t.endpoint.path}`,
      connections: o.connections,
      seconds,
      headers: { host: t.endpoint.hostHeader },
      ...(overallRate ? { overallRate } : {}),
    });
    signal.stopped = true;
    const probe = await sampling;
    const latency = probe.histogram.summary();
    probe.histogram.destroy();
    const total = figures.requests + latency.count;
    return {
      latency,
      autocannonMs: figures.latencyMs,
      operations: figures.requests,
      operationsPerSec: figures.requestsPerSec,
      errors: figures.errors + probe.errors + probe.badStatus,
      cpuSecondsPer1k: cpuPer1k(before, cpuSnapshot(t.procs), total),
    };
  } finally {
    signal.stopped = true;
    sampler.close();
  }
}

async function warmUp(t: HttpTarget, o: RunOptions, load: LoadGenerator, overallRate: number | undefined): Promise<void> {
  const r = await loadAndSample(t, o, load, o.warmupSeconds, overallRate);
  // Errors only: a short warm-up (--quick) on a loaded machine may end while the first mTLS
  // handshakes of a fresh pool are still in flight, with nothing answered yet and nothing wrong.
  if (r.errors > 0) {
    throw new BenchError('BENCH_WARMUP_FAILED', `${t.name}: warm-up answered ${r.operations} requests with ${r.errors} errors — is the route allowed and the upstream up?`);
  }
}

function scenario(id: string, title: string, method: string, runs: Map<string, RunSample[]>, targets: readonly HttpTarget[]): ScenarioResult {
  return compareTargets({
    id,
    title,
    method,
    unit: 'req/s',
    targets: Object.fromEntries(targets.map((t) => [t.name, summarizeRuns(runs.get(t.name)!)])),
  });
}

export async function httpFixedRate(targets: readonly HttpTarget[], o: RunOptions, load: LoadGenerator, rate: number): Promise<ScenarioResult> {
  const id = `http-rate-${rate}`;
  o.log(`${id}: ${rate} req/s fixed rate over ${o.connections} keep-alive connections`);
  const runs = await interleave(id, targets, o, (t) => warmUp(t, o, load, rate), (t) => loadAndSample(t, o, load, o.seconds, rate));
  return scenario(
    id,
    `HTTP/1.1 keep-alive, 1 KB body, ${rate} req/s`,
    `autocannon: ${rate} req/s fixed rate (coordinated omission corrected), ${o.connections} connections, ${o.seconds} s after ${o.warmupSeconds} s warm-up; latency from the µs sampler (1 connection, a request every ${o.samplerIntervalMs} ms)`,
    runs,
    targets,
  );
}

export async function httpSaturation(targets: readonly HttpTarget[], o: RunOptions, load: LoadGenerator): Promise<ScenarioResult> {
  const id = 'http-saturation';
  o.log(`${id}: closed loop, ${o.connections} keep-alive connections`);
  const runs = await interleave(id, targets, o, (t) => warmUp(t, o, load, undefined), (t) => loadAndSample(t, o, load, o.seconds, undefined));
  return scenario(
    id,
    'HTTP/1.1 keep-alive, 1 KB body, saturation',
    `autocannon closed loop (as fast as answered), ${o.connections} connections, ${o.seconds} s after ${o.warmupSeconds} s warm-up; req/s = saturation throughput; latency from the µs sampler under that load`,
    runs,
    targets,
  );
}
