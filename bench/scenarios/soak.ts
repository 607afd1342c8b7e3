import { BenchError } from '../lib/bench-error.ts';
import type { LoadGenerator } from '../lib/load.ts';
import { median } from '../lib/median.ts';
import { cpuPer1k, cpuSnapshot, rssBytes } from '../lib/process-usage.ts';
import type { RunOptions } from '../lib/run-options.ts';
import type { HttpTarget } from '../lib/topology.ts';

/**
 * The soak: the meshlet pair at a steady 1,000 req/s (the http-rate scenarios' load: autocannon,
 * fixed rate over the same keep-alive connections) for minutes, with both sidecars' resident
 * memory sampled all along. A leak — per request or per connection reuse — shows as RSS that
 * keeps growing at a load that does not change; a healthy sidecar's RSS levels off once its
 * heap has sized itself for the load, which the warm-up before the clock is for.
 *
 * meshlet only: the question is whether the sidecar's memory holds still, and nginx's does not
 * move at constant load (C, pool allocators). Soaking it alongside would share the two cores
 * with meshlet's soak (changing what is measured), or one after the other double the longest
 * part of the run.
 */

export interface RssSample {
  /** Seconds since the measured soak started (after the warm-up). */
  t: number;
  /** VmRSS by role ("outbound", "inbound"), bytes. */
  rss: Record<string, number>;
}

export interface SoakResult {
  rate: number;
  connections: number;
  warmupSeconds: number;
  seconds: number;
  sampleEverySeconds: number;
  requests: number;
  requestsPerSec: number;
  /** autocannon errors + timeouts + non-2xx over the measured soak. */
  errors: number;
  /** autocannon's own percentiles over the soak, whole milliseconds. */
  latencyMs: { p50: number; p99: number };
  cpuSecondsPer1k: Record<string, number>;
  /** By role: RSS at the start (median of the first `window` samples), at the end (median of the last), growth. */
  rss: Record<string, { startBytes: number; endBytes: number; maxBytes: number; growthPercent: number }>;
  /** Samples the start and end figures are each the median of. */
  window: number;
  samples: RssSample[];
  method: string;
}

/** Start and end are medians of this many samples: one sample taken just before a major GC would move a single reading by several MB. */
const WINDOW = 3;

export async function soak(t: HttpTarget, o: RunOptions, load: LoadGenerator, spec: { rate: number; seconds: number; warmupSeconds: number }): Promise<SoakResult> {
  // ~60 samples in a 10-minute soak; at least 2 × WINDOW + 1 in a short (--quick) one.
  const every = Math.min(10, Math.max(0.5, spec.seconds / (2 * WINDOW + 4)));
  const url = `http://${t.endpoint.host}:${t.endpoint.port}${t.endpoint.path}`;
  const loadSpec = { url, connections: o.connections, headers: { host: t.endpoint.hostHeader }, overallRate: spec.rate };
  o.log(`soak: ${t.name} at ${spec.rate} req/s over ${o.connections} keep-alive connections, ${spec.warmupSeconds} s warm-up, then ${spec.seconds} s with RSS sampled every ${every} s`);
  const warm = await load.run({ ...loadSpec, seconds: spec.warmupSeconds });
  if (warm.errors > 0) throw new BenchError('BENCH_WARMUP_FAILED', `soak ${t.name}: warm-up answered ${warm.requests} requests with ${warm.errors} errors`);

  const samples: RssSample[] = [];
  let exited: string | null = null;
  const started = performance.now();
  const sample = () => {
    try {
      samples.push({ t: Math.round((performance.now() - started) / 100) / 10, rss: Object.fromEntries(t.procs.map((p) => [p.role, rssBytes(p.pid)])) });
    } catch (err) {
      // /proc/<pid> gone: the sidecar died under the soak — the finding, reported after the load ends.
      exited ??= (err as Error).message;
    }
  };
  const before = cpuSnapshot(t.procs);
  sample();
  const timer = setInterval(sample, every * 1000);
  let figures;
  try {
    figures = await load.run({ ...loadSpec, seconds: spec.seconds });
  } finally {
    clearInterval(timer);
  }
  sample();
  if (exited) throw new BenchError('BENCH_PROCESS_EXITED', `soak ${t.name}: a sidecar exited during the soak (${exited})`);
  const cpu = cpuPer1k(before, cpuSnapshot(t.procs), figures.requests);

  const rss: SoakResult['rss'] = {};
  const window = Math.min(WINDOW, Math.floor(samples.length / 2));
  for (const p of t.procs) {
    const series = samples.map((s) => s.rss[p.role]!);
    const startBytes = median(series.slice(0, window));
    const endBytes = median(series.slice(-window));
    rss[p.role] = { startBytes, endBytes, maxBytes: Math.max(...series), growthPercent: ((endBytes - startBytes) / startBytes) * 100 };
  }
  const mib = (b: number) => (b / 1048576).toFixed(1);
  o.log(`  soak: ${figures.requests} requests (${figures.requestsPerSec.toFixed(0)}/s), ${figures.errors} errors; RSS ${Object.entries(rss).map(([role, r]) => `${role} ${mib(r.startBytes)} -> ${mib(r.endBytes)} MiB (${r.growthPercent >= 0 ? '+' : ''}${r.growthPercent.toFixed(1)} %)`).join(', ')}`);
  return {
    rate: spec.rate,
    connections: o.connections,
    warmupSeconds: spec.warmupSeconds,
    seconds: spec.seconds,
    sampleEverySeconds: every,
    requests: figures.requests,
    requestsPerSec: figures.requestsPerSec,
    errors: figures.errors,
    latencyMs: { p50: figures.latencyMs.p50, p99: figures.latencyMs.p99 },
    cpuSecondsPer1k: cpu,
    rss,
    window,
    samples,
    method: `autocannon: ${spec.rate} req/s fixed rate over ${o.connections} keep-alive connections through the meshlet pair (as the http-rate scenarios), ${spec.warmupSeconds} s warm-up, then ${spec.seconds} s measured; VmRSS of both sidecars every ${every} s; start / end = median of the first / last ${window} samples; errors = autocannon errors + timeouts + non-2xx over the measured part`,
  };
}
