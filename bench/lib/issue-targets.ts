import type { ScenarioResult } from './figures.ts';

/**
 * Issue 5's targets, evaluated on the figures of this run — reported, never asserted (a shared
 * two-core machine decides too much of them). `met` is null when a figure is missing (nginx
 * absent, a scenario not run).
 */
export interface TargetCheck {
  target: string;
  limit: string;
  measured: string;
  met: boolean | null;
  /** Which scenario the figure comes from. */
  scenario: string;
}

export interface ProcessPeak {
  /** "meshlet/outbound", "nginx/inbound", … */
  process: string;
  /** VmHWM at the end of the run. */
  peakRssBytes: number;
  /** VmHWM once ready, before any load: the idle footprint. */
  atReadyBytes: number;
  /** VmHWM after each scenario (it only grows): where the peak was reached. */
  afterScenario: Record<string, number>;
}

const fmt = (v: number | null | undefined, digits = 2) => (v === null || v === undefined || Number.isNaN(v) ? 'n/a' : v.toFixed(digits));

export function checkIssueTargets(scenarios: ScenarioResult[], headlineId: string, peaks: ProcessPeak[]): TargetCheck[] {
  const headline = scenarios.find((s) => s.id === headlineId);
  const saturation = scenarios.find((s) => s.id === 'http-saturation');
  const checks: TargetCheck[] = [];
  const ratio = (name: string, limit: number, v: number | null | undefined, scenario: string, atMost: boolean) =>
    checks.push({ target: name, limit: `${atMost ? '≤' : '≥'} ${limit}x`, measured: v == null ? 'n/a' : `${fmt(v)}x`, met: v == null ? null : atMost ? v <= limit : v >= limit, scenario });
  ratio('added p50 per hop, meshlet / nginx', 1.5, headline?.ratios.addedP50, headlineId, true);
  ratio('added p99 per hop, meshlet / nginx', 2, headline?.ratios.addedP99, headlineId, true);
  ratio('saturation throughput, meshlet / nginx', 0.75, saturation?.ratios.operationsPerSec, 'http-saturation', false);
  for (const p of peaks.filter((x) => x.process.startsWith('meshlet/'))) {
    const mb = p.peakRssBytes / 1048576;
    checks.push({ target: `${p.process} sidecar peak RSS under load`, limit: '≤ 60 MB', measured: `${fmt(mb, 1)} MB`, met: mb <= 60, scenario: 'whole run (VmHWM)' });
  }
  const meshlet = headline?.targets.meshlet;
  if (meshlet) {
    for (const [role, v] of Object.entries(meshlet.cpuSecondsPer1k)) {
      checks.push({ target: `meshlet/${role} CPU per 1,000 requests`, limit: '< 0.2 s', measured: `${fmt(v, 3)} s`, met: v < 0.2, scenario: headlineId });
    }
  }
  return checks;
}
