import type { TargetCheck } from './issue-targets.ts';

// The summary a run ends with: every issue 15 target, its limit, what was measured, and whether
// it was met and by how much — on one screen of the terminal, and as the first table of
// results.md. Both are made from the same TargetCheck list, so they never disagree.

export function verdict(c: TargetCheck, markdown = false): string {
  if (c.reported) return 'figure';
  if (c.met === null) return 'n/a';
  const by = c.by ? ` (${c.by})` : '';
  if (c.met) return `met${by}`;
  return markdown ? `**not met**${by}` : `NOT MET${by}`;
}

export function targetsMarkdown(checks: readonly TargetCheck[]): string[] {
  return ['| target | limit | measured | verdict | from |', '|---|---|---|---|---|', ...checks.map((c) => `| ${c.target} | ${c.limit} | ${c.measured} | ${verdict(c, true)} | ${c.scenario} |`)];
}

/** "12 met, 7 not met, 4 not measured, 5 reported". */
export function tally(checks: readonly TargetCheck[]): string {
  const limited = checks.filter((c) => !c.reported);
  const met = limited.filter((c) => c.met === true).length;
  const notMet = limited.filter((c) => c.met === false).length;
  const na = limited.filter((c) => c.met === null).length;
  return `${met} of ${limited.length} targets met, ${notMet} not met${na ? `, ${na} not measured` : ''}; ${checks.length - limited.length} figures reported without a limit`;
}

/** Plain columns for the terminal: the last thing a run prints. */
export function consoleSummary(o: { title: string; lines: string[]; checks: readonly TargetCheck[] }): string {
  const rows = o.checks.map((c) => [c.target, c.scenario, c.limit, c.measured, verdict(c)]);
  const head = ['target', 'from', 'limit', 'measured', 'verdict'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ');
  const rule = '='.repeat(Math.min(160, widths.reduce((a, w) => a + w + 2, 0)));
  return [rule, o.title, ...o.lines, '', line(head), ...rows.map(line), '', tally(o.checks), rule, ''].join('\n');
}
