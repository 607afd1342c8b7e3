import type { ScenarioResult, TargetFigures } from './figures.ts';
import type { ProcessPeak, TargetCheck } from './issue-targets.ts';
import type { MicroResults } from '../scenarios/micro.ts';

/** Where and how the figures were made: part of every result file, so no figure travels without it. */
export interface MachineInfo {
  cpuModel: string;
  cpus: number;
  memoryGb: number;
  kernel: string;
  node: string;
  nginx: string | null;
  note: string;
}

/** The request the bench sends, before measuring, to a route the server pod's policy closes. */
export interface PolicyCheck {
  path: string;
  status: number;
}

export interface BenchResults {
  generatedAt: string;
  quick: boolean;
  machine: MachineInfo;
  settings: Record<string, unknown>;
  topology: {
    upstream: string;
    nginx: string;
    /** nginx's stream proxy pair (the opaque TCP peer), or `nginx stream module not available: <reason>`. */
    nginxStream: string;
    /** The TLS-passthrough hop (scenario tls-passthrough): what ran (`measured: …`), `skipped: <reason>` (no root / iptables), or `not measured: …` (not selected). */
    tlsPassthrough: string;
    meshlet: { note: string; policyCheck: PolicyCheck | null };
  };
  /** Scenario id -> figures; the headline (issue 5's targets) is `headline`. */
  headline: string;
  scenarios: Record<string, ScenarioResult>;
  peakRss: ProcessPeak[];
  issueTargets: TargetCheck[];
  micro: MicroResults | null;
  /** --profile: each sidecar's functions by self time. */
  profiles: SidecarProfile[] | null;
}

export interface SidecarProfile {
  process: string;
  file: string;
  top: string;
}

function meshletLine(r: BenchResults): string {
  const m = r.topology.meshlet;
  return m.policyCheck ? `${m.note}; GET ${m.policyCheck.path} (closed route) answered ${m.policyCheck.status}, so the per-route policy is enforced` : m.note;
}

const n0 = (v: number) => (Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : 'n/a');
const sign = (v: number) => (v >= 0 ? `+${n0(v)}` : n0(v));
const ratio = (v: number | null) => (v === null ? 'n/a' : `${v.toFixed(2)}x`);

function scenarioTable(s: ScenarioResult): string {
  const lines = [
    `### ${s.title} (\`${s.id}\`)`,
    '',
    s.method + '.',
    '',
    `| target | p50 µs | p90 µs | p99 µs | p99.9 µs | added p50 | added p90 | added p99 | added p99.9 | ${s.unit} | errors | CPU s / 1k (per process) | autocannon p50 / p99 (ms) |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|',
  ];
  for (const name of ['direct', 'meshlet', 'nginx'] as const) {
    const t = s.targets[name];
    if (!t) continue;
    const f: TargetFigures = t;
    const added = f.addedUs ? [f.addedUs.p50Us, f.addedUs.p90Us, f.addedUs.p99Us, f.addedUs.p999Us].map(sign) : ['—', '—', '—', '—'];
    const cpu = Object.entries(f.cpuSecondsPer1k).map(([role, v]) => `${role} ${v.toFixed(3)}`).join(', ') || '—';
    const ac = f.autocannonMs ? `${f.autocannonMs.p50} / ${f.autocannonMs.p99}` : '—';
    lines.push(`| ${name} | ${n0(f.latencyUs.p50Us)} | ${n0(f.latencyUs.p90Us)} | ${n0(f.latencyUs.p99Us)} | ${n0(f.latencyUs.p999Us)} | ${added.join(' | ')} | ${n0(f.operationsPerSec)} | ${f.errors} | ${cpu} | ${ac} |`);
  }
  const r = s.ratios;
  // No nginx in this scenario (tls-passthrough: nginx cannot read SO_ORIGINAL_DST; the method says why): no row of n/a.
  if (!s.targets.nginx) return lines.join('\n');
  lines.push(`| **meshlet / nginx** | | | | | ${ratio(r.addedP50)} | ${ratio(r.addedP90)} | ${ratio(r.addedP99)} | ${ratio(r.addedP999)} | ${ratio(r.operationsPerSec)} | | | |`);
  return lines.join('\n');
}

export function markdownReport(r: BenchResults): string {
  const m = r.machine;
  const out = [
    `# meshlet bench results${r.quick ? ' (--quick: tiny runs, figures only prove the pipeline works)' : ''}`,
    '',
    `${r.generatedAt} · ${m.cpus} × ${m.cpuModel}, ${m.memoryGb} GB, Linux ${m.kernel}, node ${m.node}, ${m.nginx ?? 'nginx missing'}.`,
    '',
    `> ${m.note}`,
    '',
    `- Upstream: ${r.topology.upstream}.`,
    `- meshlet: ${meshletLine(r)}.`,
    `- nginx: ${r.topology.nginx}.`,
    `- nginx stream (opaque TCP scenarios): ${r.topology.nginxStream}.`,
    `- TLS passthrough hop: ${r.topology.tlsPassthrough}.`,
    `- Each figure is the median of ${String(r.settings.rounds)} interleaved runs; latency in µs from hrtime-timed requests (HDR histogram); "added" = target minus direct at the same percentile.`,
    '',
  ];
  // --micro measures no scenario: no empty tables for it.
  if (Object.keys(r.scenarios).length > 0) {
    out.push(
      `## Issue 5 targets (on \`${r.headline}\`; reported, not asserted)`,
      '',
      '| target | limit | measured | met | from |',
      '|---|---|---|---|---|',
      ...r.issueTargets.map((c) => `| ${c.target} | ${c.limit} | ${c.measured} | ${c.met === null ? 'n/a' : c.met ? 'met' : '**not met**'} | ${c.scenario} |`),
      '',
      '## Scenarios',
      '',
      ...Object.values(r.scenarios).flatMap((s) => [scenarioTable(s), '']),
      '## Peak RSS (VmHWM, MB) of each proxy process, after each scenario',
      '',
      `| process | ready, idle | ${Object.keys(r.scenarios).join(' | ')} |`,
      `|---|---:|${Object.keys(r.scenarios).map(() => '---:').join('|')}|`,
      ...r.peakRss.map((p) => `| ${p.process} | ${(p.atReadyBytes / 1048576).toFixed(1)} | ${Object.keys(r.scenarios).map((id) => (p.afterScenario[id] !== undefined ? (p.afterScenario[id]! / 1048576).toFixed(1) : '')).join(' | ')} |`),
      '',
    );
  }
  if (r.profiles) {
    out.push('## CPU profiles (--profile: top functions by self time)', '');
    for (const p of r.profiles) out.push(`### ${p.process}`, '', `\`${p.file}\``, '', '```', p.top, '```', '');
  }
  if (r.micro) {
    out.push(
      '## Micro-benchmarks',
      '',
      `Every file matching ${r.micro.patterns.map((p) => `\`${p}\``).join(', ')}, each run as its own process; its output verbatim.`,
      '',
    );
    for (const b of r.micro.benches) {
      const how = `\`node ${[b.file, ...b.args].join(' ')}\`, ${b.seconds} s`;
      out.push(`### ${b.file}`, '', b.ok ? how : `**FAILED** (${b.exit}): ${how}`, '', '```', b.ok ? b.output : [b.output, b.stderr ?? ''].filter(Boolean).join('\n'), '```', '');
    }
  }
  return out.join('\n');
}

/**
 * The short form for bench/README.md: where and when, issue 5's targets, and one line per
 * scenario (added latency of each proxy, the ratio, throughput, CPU per 1,000 of each sidecar).
 */
export function readmeSummary(r: BenchResults): string {
  const m = r.machine;
  const lines = [
    `Run of ${r.generatedAt.slice(0, 16).replace('T', ' ')} UTC on ${m.cpus} × ${m.cpuModel} (${m.memoryGb} GB), Linux ${m.kernel}, node ${m.node}, ${m.nginx ?? 'nginx missing'}; medians of ${String(r.settings.rounds)} interleaved runs. ${m.note} Full tables: [results/results.md](results/results.md), chart: [results/latency.svg](results/latency.svg).`,
    '',
    `meshlet: ${meshletLine(r)}.`,
    '',
    `| issue 5 target (on \`${r.headline}\`) | limit | measured | met |`,
    '|---|---|---|---|',
    ...r.issueTargets.map((c) => `| ${c.target} | ${c.limit} | ${c.measured} | ${c.met === null ? 'n/a' : c.met ? 'met' : '**not met**'} |`),
    '',
    '| scenario | meshlet added p50 / p99 µs | nginx added p50 / p99 µs | meshlet/nginx p50, p99 | meshlet / nginx / direct per s | meshlet CPU s/1k (per sidecar) |',
    '|---|---|---|---|---|---|',
  ];
  for (const s of Object.values(r.scenarios)) {
    const mt = s.targets.meshlet;
    const nt = s.targets.nginx;
    const dt = s.targets.direct;
    const added = (t: typeof mt) => (t?.addedUs ? `${sign(t.addedUs.p50Us)} / ${sign(t.addedUs.p99Us)}` : 'n/a');
    const rate = (t: typeof mt) => (t ? n0(t.operationsPerSec) : '—');
    const cpu = mt ? Object.entries(mt.cpuSecondsPer1k).map(([role, v]) => `${role} ${v.toFixed(3)}`).join(', ') : '—';
    lines.push(`| ${s.id} | ${added(mt)} | ${added(nt)} | ${ratio(s.ratios.addedP50)}, ${ratio(s.ratios.addedP99)} | ${rate(mt)} / ${rate(nt)} / ${rate(dt)} ${s.unit} | ${cpu} |`);
  }
  const peak = r.peakRss.filter((p) => p.process.startsWith('meshlet/')).map((p) => `${p.process} ${(p.atReadyBytes / 1048576).toFixed(0)} MB idle, ${(p.peakRssBytes / 1048576).toFixed(0)} MB peak`);
  if (peak.length) lines.push('', `Sidecar memory (VmHWM): ${peak.join('; ')}.`);
  return lines.join('\n');
}
