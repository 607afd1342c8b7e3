import type { ScenarioResult, TargetFigures } from './figures.ts';
import type { ProcessPeak, TargetCheck } from './issue-targets.ts';
import type { MicroResults } from '../scenarios/micro.ts';
import type { IdleConnectionsResult } from '../scenarios/idle-connections.ts';
import type { SoakResult } from '../scenarios/soak.ts';
import { PEAK_EXCLUDES } from './issue-targets.ts';
import { consoleSummary, targetsMarkdown, tally } from './target-summary.ts';

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
    /** `runtime`: what the sidecars ran (the artifact or --sources) with which Node flags and environment. */
    meshlet: { note: string; runtime: string; policyCheck: PolicyCheck | null };
  };
  /** Scenario id -> figures; the headline (the CPU target's rate) is `headline`. */
  headline: string;
  scenarios: Record<string, ScenarioResult>;
  /** The soak (meshlet only): RSS over minutes at a steady rate; null when not run. */
  soak: SoakResult | null;
  /** Memory per idle connection, meshlet and nginx; null when not run. */
  idleConnections: IdleConnectionsResult | null;
  peakRss: ProcessPeak[];
  issueTargets: TargetCheck[];
  micro: MicroResults | null;
  /** --profile: each sidecar's functions by self time. */
  profiles: SidecarProfile[] | null;
}

export interface SidecarProfile {
  process: string;
  file: string;
  /** Busy samples by owning module (bench/lib/cpu-profile.ts costByOwner). */
  owners: string;
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

const mib = (b: number) => (b / 1048576).toFixed(1);
const delta = (b: number) => `${b >= 0 ? '+' : ''}${mib(b)}`;

function measuredAnything(r: BenchResults): boolean {
  return Object.keys(r.scenarios).length > 0 || r.soak !== null || r.idleConnections !== null;
}

function soakSection(k: SoakResult): string[] {
  const roles = Object.keys(k.rss);
  // About ten rows (one a minute of a 10-minute soak): the shape of the curve, not 60 lines of it.
  const step = Math.max(1, Math.ceil((k.samples.length - 1) / 10));
  const shown = k.samples.filter((_, i) => i % step === 0 || i === k.samples.length - 1);
  return [
    `### Soak: the meshlet pair at ${k.rate} req/s for ${k.seconds} s (\`soak\`)`,
    '',
    k.method + '.',
    '',
    '| sidecar | RSS start MiB | RSS end MiB | growth | max MiB |',
    '|---|---:|---:|---:|---:|',
    ...roles.map((role) => {
      const x = k.rss[role]!;
      return `| meshlet/${role} | ${mib(x.startBytes)} | ${mib(x.endBytes)} | ${x.growthPercent >= 0 ? '+' : ''}${x.growthPercent.toFixed(1)} % | ${mib(x.maxBytes)} |`;
    }),
    '',
    `${n0(k.requests)} requests, ${n0(k.requestsPerSec)} req/s achieved, ${k.errors} errors; autocannon p50 / p99 ${k.latencyMs.p50} / ${k.latencyMs.p99} ms; CPU s / 1k: ${Object.entries(k.cpuSecondsPer1k).map(([role, v]) => `${role} ${v.toFixed(3)}`).join(', ')}.`,
    '',
    `| t (s) | ${roles.map((role) => `${role} MiB`).join(' | ')} |`,
    `|---:|${roles.map(() => '---:').join('|')}|`,
    ...shown.map((x) => `| ${x.t.toFixed(0)} | ${roles.map((role) => mib(x.rss[role]!)).join(' | ')} |`),
    '',
  ];
}

/** The process that holds the N connections of a measurement: its figure is the per-connection cost. */
const holds = (path: string, role: string) => (path === 'outbound' ? role === 'outbound' : role === 'inbound');

function idleSection(i: IdleConnectionsResult): string[] {
  const rows = i.measurements.flatMap((m) =>
    Object.entries(m.processes).map(([role, f]) => `| ${m.target} | ${m.path} | ${m.target}/${role} | ${mib(f.rssBeforeBytes)} | ${mib(f.rssAfterBytes)} | ${delta(f.rssAfterBytes - f.rssBeforeBytes)} | ${holds(m.path, role) ? `**${f.mibPer1k.toFixed(1)}**` : f.mibPer1k.toFixed(1)} | ${f.socketsBefore} → ${f.socketsAfter} | ${m.openSeconds.toFixed(1)} |`),
  );
  return [
    `### Memory of idle keep-alive connections (\`idle-connections\`, ${i.connections} per measurement)`,
    '',
    i.method + '.',
    'Per 1,000 = (after − before) / connections × 1,000, in bold for the process that holds the connections: the outbound on `outbound`, the inbound on `inbound-mtls` (on `outbound` the inbound holds only the pooled mTLS connections: its socket count says how many).',
    '',
    '| target | connections to | process | RSS before MiB | RSS after MiB | Δ MiB | MiB per 1,000 | sockets | open s |',
    '|---|---|---|---:|---:|---:|---:|---|---:|',
    ...rows,
    '',
  ];
}

function memoryTables(r: BenchResults): string[] {
  // Every scenario a memory reading was taken after (soak and idle-connections included), in run order.
  const ids = [...new Set(r.peakRss.flatMap((p) => Object.keys(p.afterScenario)))];
  const row = (p: ProcessPeak, first: number, per: Record<string, number>) => `| ${p.process} | ${mib(first)} | ${ids.map((id) => (per[id] !== undefined ? mib(per[id]!) : '')).join(' | ')} |`;
  const head = (first: string) => [`| process | ${first} | ${ids.join(' | ')} |`, `|---|---:|${ids.map(() => '---:').join('|')}|`];
  return [
    '## Peak RSS (VmHWM, MiB) of each proxy process, after each scenario',
    '',
    ...head('ready, idle'),
    ...r.peakRss.map((p) => row(p, p.atReadyBytes, p.afterScenario)),
    '',
    '## RSS (VmRSS, MiB) of each proxy process, after each scenario',
    '',
    ...head('ready, idle'),
    ...r.peakRss.map((p) => row(p, p.idleRssBytes, p.rssAfterScenario)),
    '',
  ];
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
    `- meshlet sidecars run: ${r.topology.meshlet.runtime}.`,
    `- nginx: ${r.topology.nginx}.`,
    `- nginx stream (opaque TCP scenarios): ${r.topology.nginxStream}.`,
    `- TLS passthrough hop: ${r.topology.tlsPassthrough}.`,
    `- Each figure is the median of ${String(r.settings.rounds)} interleaved runs; latency in µs from hrtime-timed requests (HDR histogram); "added" = target minus direct at the same percentile.`,
    '',
  ];
  // --micro measures no scenario: no empty tables for it.
  if (measuredAnything(r)) {
    out.push(
      `## Summary: issue 15 targets (reported, not asserted)`,
      '',
      `Sidecars: ${r.topology.meshlet.runtime}. CPU is judged on \`${r.headline}\`; the peak RSS over every scenario but ${PEAK_EXCLUDES} (which opens connections on purpose: its cost is the per-1,000 figure). ${tally(r.issueTargets)}.`,
      '',
      ...targetsMarkdown(r.issueTargets),
      '',
    );
    // In run order: the soak first, idle-connections after the latency scenarios.
    out.push('## Scenarios', '');
    if (r.soak) out.push(...soakSection(r.soak));
    out.push(...Object.values(r.scenarios).flatMap((s) => [scenarioTable(s), '']));
    if (r.idleConnections) out.push(...idleSection(r.idleConnections));
    out.push(...memoryTables(r));
  }
  if (r.profiles) {
    out.push('## CPU profiles (--profile: busy samples by owning module, then top functions by self time)', '');
    for (const p of r.profiles) out.push(`### ${p.process}`, '', `\`${p.file}\``, '', '```', p.owners, '```', '', '```', p.top, '```', '');
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
 * The short form for bench/README.md: where and when, issue 15's targets, and one line per
 * scenario (added latency of each proxy, the ratio, throughput, CPU per 1,000 of each sidecar).
 */
export function readmeSummary(r: BenchResults): string {
  const m = r.machine;
  const lines = [
    `Run of ${r.generatedAt.slice(0, 16).replace('T', ' ')} UTC on ${m.cpus} × ${m.cpuModel} (${m.memoryGb} GB), Linux ${m.kernel}, node ${m.node}, ${m.nginx ?? 'nginx missing'}; medians of ${String(r.settings.rounds)} interleaved runs. ${m.note} Full tables: [results/results.md](results/results.md), chart: [results/latency.svg](results/latency.svg).`,
    '',
    `meshlet: ${meshletLine(r)}. Sidecars run: ${r.topology.meshlet.runtime}.`,
    '',
    `Issue 15 targets (CPU on \`${r.headline}\`): ${tally(r.issueTargets)}.`,
    '',
    ...targetsMarkdown(r.issueTargets),
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
  const peak = r.peakRss.filter((p) => p.process.startsWith('meshlet/')).map((p) => `${p.process} ${mib(p.idleRssBytes)} MiB idle (VmRSS), ${mib(p.peakRssBytes)} MiB peak (VmHWM, whole run)`);
  if (peak.length) lines.push('', `Sidecar memory: ${peak.join('; ')}.`);
  if (r.soak) lines.push('', `Soak (${r.soak.seconds} s at ${r.soak.rate} req/s): ${Object.entries(r.soak.rss).map(([role, x]) => `meshlet/${role} ${mib(x.startBytes)} → ${mib(x.endBytes)} MiB (${x.growthPercent >= 0 ? '+' : ''}${x.growthPercent.toFixed(1)} %)`).join(', ')}; ${n0(r.soak.requestsPerSec)} req/s achieved, ${r.soak.errors} errors.`);
  if (r.idleConnections) {
    const per = r.idleConnections.measurements.map((x) => {
      const role = x.path === 'outbound' ? 'outbound' : 'inbound';
      return `${x.target}/${role} ${x.processes[role]?.mibPer1k.toFixed(1) ?? 'n/a'} MiB (${x.path})`;
    });
    lines.push('', `Memory per 1,000 idle keep-alive connections: ${per.join(', ')}.`);
  }
  return lines.join('\n');
}

/** The one-screen summary a run ends with on the terminal. */
export function runSummary(r: BenchResults): string {
  return consoleSummary({
    title: `meshlet bench — issue 15 targets${r.quick ? ' (--quick: tiny runs, the figures only prove the pipeline)' : ''}; ${r.generatedAt.slice(0, 16).replace('T', ' ')} UTC, node ${r.machine.node}, ${r.machine.nginx ?? 'nginx missing'}`,
    lines: [`sidecars: ${r.topology.meshlet.runtime}`, `CPU judged on ${r.headline === 'none' ? 'the middle fixed rate (not run)' : r.headline}; peak RSS = VmHWM over every scenario before ${PEAK_EXCLUDES}; reported, not asserted`],
    checks: r.issueTargets,
  });
}
