import type { LatencySummary, PercentileKey } from './latency-histogram.ts';
import { PERCENTILES } from './latency-histogram.ts';
import { median } from './median.ts';
import type { TargetName } from './topology.ts';

/** One measured run of one target. */
export interface RunSample {
  /** The µs probe's figures (HTTP: the sampler beside the load; gRPC / new connections: every operation timed). */
  latency: LatencySummary;
  /** autocannon's own percentiles, whole milliseconds, coordinated-omission corrected at fixed rates. */
  autocannonMs?: { p50: number; p90: number; p99: number; p999: number };
  operations: number;
  operationsPerSec: number;
  errors: number;
  cpuSecondsPer1k: Record<string, number>;
}

export type Percentiles = Record<PercentileKey, number>;

/** A target's figures in one scenario: medians over the repeated runs. */
export interface TargetFigures {
  runs: number;
  latencyUs: Percentiles;
  /** Target minus direct, per percentile (absent for direct itself). */
  addedUs?: Percentiles;
  autocannonMs?: { p50: number; p90: number; p99: number; p999: number };
  operationsPerSec: number;
  errors: number;
  samples: number;
  cpuSecondsPer1k: Record<string, number>;
}

export interface ScenarioResult {
  id: string;
  title: string;
  /** What load, how long, what was timed: enough to reproduce the row. */
  method: string;
  /** "req/s", "calls/s", "connections/s". */
  unit: string;
  /** Every target the run has (nginx absent when it is missing on the machine). */
  targets: Partial<Record<TargetName, TargetFigures>>;
  /** meshlet / nginx; null when either side has no figure. */
  ratios: { addedP50: number | null; addedP90: number | null; addedP99: number | null; addedP999: number | null; operationsPerSec: number | null };
}

export function summarizeRuns(runs: RunSample[]): TargetFigures {
  const latencyUs = Object.fromEntries(PERCENTILES.map((p) => [p, median(runs.map((r) => r.latency[p]))])) as Percentiles;
  const roles = Object.keys(runs[0]?.cpuSecondsPer1k ?? {});
  const ac = runs.every((r) => r.autocannonMs)
    ? {
        p50: median(runs.map((r) => r.autocannonMs!.p50)),
        p90: median(runs.map((r) => r.autocannonMs!.p90)),
        p99: median(runs.map((r) => r.autocannonMs!.p99)),
        p999: median(runs.map((r) => r.autocannonMs!.p999)),
      }
    : undefined;
  return {
    runs: runs.length,
    latencyUs,
    ...(ac ? { autocannonMs: ac } : {}),
    operationsPerSec: median(runs.map((r) => r.operationsPerSec)),
    errors: runs.reduce((a, r) => a + r.errors, 0),
    samples: runs.reduce((a, r) => a + r.latency.count, 0),
    cpuSecondsPer1k: Object.fromEntries(roles.map((role) => [role, median(runs.map((r) => r.cpuSecondsPer1k[role]!))])),
  };
}

/** Adds "target minus direct" to each proxied target and the meshlet/nginx ratios. */
export function compareTargets(s: Omit<ScenarioResult, 'ratios'>): ScenarioResult {
  const direct = s.targets.direct;
  for (const name of ['meshlet', 'nginx'] as const) {
    const t = s.targets[name];
    if (t && direct) {
      t.addedUs = Object.fromEntries(PERCENTILES.map((p) => [p, t.latencyUs[p] - direct.latencyUs[p]])) as Percentiles;
    }
  }
  const m = s.targets.meshlet;
  const n = s.targets.nginx;
  const both = m && n ? { m, n } : null;
  const ratio = (p: PercentileKey) => (both && both.n.addedUs && both.m.addedUs && both.n.addedUs[p] > 0 ? both.m.addedUs[p] / both.n.addedUs[p] : null);
  return {
    ...s,
    ratios: {
      addedP50: ratio('p50Us'),
      addedP90: ratio('p90Us'),
      addedP99: ratio('p99Us'),
      addedP999: ratio('p999Us'),
      operationsPerSec: both && both.n.operationsPerSec > 0 ? both.m.operationsPerSec / both.n.operationsPerSec : null,
    },
  };
}
