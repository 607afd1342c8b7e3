import type { ScenarioResult } from './figures.ts';
import { PERCENTILES } from './latency-histogram.ts';

/**
 * The report's chart, written by hand (no plotting dependency): one panel per scenario,
 * latency percentiles grouped by percentile, one bar per target, on a log scale — p99.9 is
 * often 50x p50, and a linear axis would flatten the p50 differences the bench is about.
 */
const COLORS: Record<string, string> = { direct: '#7f8c8d', meshlet: '#2e86de', nginx: '#27ae60' };
const LABELS = ['p50', 'p90', 'p99', 'p99.9'];
const WIDTH = 860;
const PANEL = 230;
const LEFT = 70;
const TOP = 50;

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function fmtUs(us: number): string {
  return us >= 1000 ? `${(us / 1000).toFixed(us >= 10_000 ? 0 : 1)} ms` : `${Math.round(us)} µs`;
}

export function latencyChartSvg(scenarios: ScenarioResult[], subtitle: string): string {
  const panels = scenarios.filter((s) => Object.values(s.targets).some((t) => t !== undefined));
  const height = TOP + panels.length * (PANEL + 40) + 20;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="${LEFT}" y="20" font-size="15" font-weight="bold">Latency percentiles by target (µs, log scale; lower is better)</text>`,
    `<text x="${LEFT}" y="36" fill="#555">${esc(subtitle)}</text>`,
  ];
  const names = ['direct', 'meshlet', 'nginx'];
  names.forEach((n, i) => {
    const x = WIDTH - 260 + i * 85;
    out.push(`<rect x="${x}" y="10" width="12" height="12" fill="${COLORS[n]}"/><text x="${x + 16}" y="20">${n}</text>`);
  });
  panels.forEach((s, pi) => {
    const y0 = TOP + pi * (PANEL + 40) + 20;
    const plotH = PANEL - 30;
    const values = names.flatMap((n) => {
      const t = s.targets[n as keyof typeof s.targets];
      return t ? PERCENTILES.map((p) => t.latencyUs[p]) : [];
    });
    const min = Math.max(1, Math.min(...values));
    // One decade of room below the smallest bar, so a value just above a decade still shows.
    const lo = Math.pow(10, Math.floor(Math.log10(min)) - (min < 2 * Math.pow(10, Math.floor(Math.log10(min))) ? 1 : 0));
    const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(...values, lo * 10))));
    const yOf = (v: number) => y0 + plotH - ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * plotH;
    out.push(`<text x="${LEFT}" y="${y0 - 6}" font-size="12" font-weight="bold">${esc(s.title)}</text>`);
    for (let d = lo; d <= hi; d *= 10) {
      const y = yOf(d);
      out.push(`<line x1="${LEFT}" y1="${y}" x2="${WIDTH - 20}" y2="${y}" stroke="#e5e5e5"/><text x="${LEFT - 6}" y="${y + 4}" text-anchor="end" fill="#555">${fmtUs(d)}</text>`);
    }
    const groupW = (WIDTH - 20 - LEFT) / PERCENTILES.length;
    const barW = Math.min(40, (groupW - 30) / names.length);
    PERCENTILES.forEach((p, gi) => {
      const gx = LEFT + gi * groupW + 15;
      out.push(`<text x="${gx + (barW * names.length) / 2}" y="${y0 + plotH + 16}" text-anchor="middle">${LABELS[gi]}</text>`);
      names.forEach((n, bi) => {
        const t = s.targets[n as keyof typeof s.targets];
        const x = gx + bi * barW;
        if (!t) return;
        const v = t.latencyUs[p];
        const y = yOf(v);
        out.push(`<rect x="${x}" y="${y}" width="${barW - 2}" height="${Math.max(1, y0 + plotH - y)}" fill="${COLORS[n]}"><title>${n} ${LABELS[gi]}: ${fmtUs(v)}</title></rect>`);
        out.push(`<text x="${x + (barW - 2) / 2}" y="${y - 3}" text-anchor="middle" font-size="9" fill="#333">${fmtUs(v)}</text>`);
      });
    });
    out.push(`<line x1="${LEFT}" y1="${y0 + plotH}" x2="${WIDTH - 20}" y2="${y0 + plotH}" stroke="#999"/>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
