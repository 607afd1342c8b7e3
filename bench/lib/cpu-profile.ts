// The functions with the most self time in a V8 .cpuprofile (from `node --cpu-prof`): what
// `npm run bench -- --profile DIR` reports for each sidecar. Also usable on any profile:
//   node bench/lib/cpu-profile.ts FILE.cpuprofile [N]
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount: number;
}

export interface SelfTimeRow {
  /** Share of all samples, in percent. */
  percent: number;
  /** "functionName src/…/file.ts:line" (paths shortened to node_modules/, src/, lib/). */
  fn: string;
}

export function topSelfTime(file: string, top = 30): SelfTimeRow[] {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as { nodes: ProfileNode[] };
  const self = new Map<string, number>();
  let total = 0;
  for (const n of profile.nodes) {
    const f = n.callFrame;
    const key = `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\/(node_modules|src|lib)\//, '$1/')}:${f.lineNumber + 1}`;
    self.set(key, (self.get(key) ?? 0) + n.hitCount);
    total += n.hitCount;
  }
  return [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([fn, hits]) => ({ percent: (hits / Math.max(1, total)) * 100, fn }));
}

export function formatSelfTime(rows: SelfTimeRow[]): string {
  return rows.map((r) => `${r.percent.toFixed(1).padStart(5)}%  ${r.fn}`).join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.stdout.write(`${formatSelfTime(topSelfTime(process.argv[2]!, Number(process.argv[3] ?? 30)))}\n`);
}
