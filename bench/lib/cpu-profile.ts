// What a V8 .cpuprofile (from `node --cpu-prof`) says about where a sidecar's time goes, two ways:
//   - topSelfTime: the functions with the most self time;
//   - costByOwner: every busy sample charged to the meshlet module nearest the leaf on its stack
//     (so node:http, node:tls or a dependency called BY a meshlet module counts as that module's
//     cost: the per-stage attribution), or, when no meshlet frame is on the stack, to the Node
//     internal module doing the work (node:http's parser calling back, TLS stream plumbing, GC).
// `npm run bench -- --profile DIR` reports both for each sidecar. Also usable on any profile:
//   node bench/lib/cpu-profile.ts FILE.cpuprofile [N]
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount: number;
  children?: number[];
}

export interface SelfTimeRow {
  /** Share of all samples, in percent. */
  percent: number;
  /** "functionName src/…/file.ts:line" (paths shortened to node_modules/, src/, lib/). */
  fn: string;
}

function readNodes(file: string): ProfileNode[] {
  return (JSON.parse(readFileSync(file, 'utf8')) as { nodes: ProfileNode[] }).nodes;
}

function shortUrl(url: string): string {
  return url.replace(/^.*\/(node_modules|src|lib)\//, '$1/');
}

export function topSelfTime(file: string, top = 30): SelfTimeRow[] {
  const self = new Map<string, number>();
  let total = 0;
  for (const n of readNodes(file)) {
    const f = n.callFrame;
    const key = `${f.functionName || '(anonymous)'} ${shortUrl(f.url)}:${f.lineNumber + 1}`;
    self.set(key, (self.get(key) ?? 0) + n.hitCount);
    total += n.hitCount;
  }
  return ranked(self, total, top).map(([fn, percent]) => ({ percent, fn }));
}

/** The `top` keys with the most samples, each with its share of `total` in percent. */
function ranked(counts: Map<string, number>, total: number, top: number): [string, number][] {
  return [...counts.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([key, hits]) => [key, (hits / Math.max(1, total)) * 100]);
}

/** A meshlet module: the sources (src/…) or the artifact (dist/src/… keeps the same path). */
const MESHLET_MODULE = /\/(src\/(?:data-plane|common|cli|control-plane)\/.+?)\.[jt]s$/;

export interface OwnerRow {
  /** Share of the busy samples ((idle) left out), in percent. */
  percent: number;
  /**
   * "src/data-plane/proxy/…" for meshlet's modules; "node:_http_server", "(garbage collector)"…
   * otherwise; "… → native writev" for the samples in a native function it called.
   */
  owner: string;
}

/**
 * Busy samples by owner: the meshlet module nearest the leaf on the sample's stack, else the
 * leaf's own module (a Node internal, a dependency, or V8's pseudo-frames such as (program)
 * and (garbage collector)). Per-stage cost without stubbing stages out: what a module calls
 * into, Node included, is its cost.
 */
export function costByOwner(file: string, top = 25): OwnerRow[] {
  const nodes = readNodes(file);
  const parent = new Map<number, ProfileNode>();
  const byId = new Map<number, ProfileNode>();
  for (const n of nodes) byId.set(n.id, n);
  for (const n of nodes) for (const c of n.children ?? []) parent.set(c, n);
  const owners = new Map<string, number>();
  let busy = 0;
  for (const n of nodes) {
    if (n.hitCount === 0 || n.callFrame.functionName === '(idle)') continue;
    let owner: string | undefined;
    for (let at: ProfileNode | undefined = n; at && !owner; at = parent.get(at.id)) {
      const m = MESHLET_MODULE.exec(at.callFrame.url);
      if (m) owner = m[1];
    }
    owner ??= n.callFrame.url ? shortUrl(n.callFrame.url) : '';
    // A native leaf (a socket write: encryption plus the loopback send, which runs the
    // receiver's TCP path in this thread) is told apart from the module's JavaScript.
    const f = n.callFrame;
    if (!f.url && f.functionName) owner = owner ? `${owner} → native ${f.functionName}` : f.functionName;
    owners.set(owner, (owners.get(owner) ?? 0) + n.hitCount);
    busy += n.hitCount;
  }
  return ranked(owners, busy, top).map(([owner, percent]) => ({ percent, owner }));
}

export function formatSelfTime(rows: SelfTimeRow[]): string {
  return rows.map((r) => `${r.percent.toFixed(1).padStart(5)}%  ${r.fn}`).join('\n');
}

export function formatOwners(rows: OwnerRow[]): string {
  return rows.map((r) => `${r.percent.toFixed(1).padStart(5)}%  ${r.owner}`).join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const n = Number(process.argv[3] ?? 30);
  process.stdout.write(`busy samples by owning module:\n${formatOwners(costByOwner(process.argv[2]!, n))}\n\nself time by function:\n${formatSelfTime(topSelfTime(process.argv[2]!, n))}\n`);
}
