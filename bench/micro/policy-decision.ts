// Micro-benchmark of the authorization decision with a 1,000-route policy.
// Run: node bench/micro/policy-decision.ts [--iterations N]   (node --expose-gc … for steadier tails)
// @bench-quick-args --iterations 5000
// Target (issue 3): well under 5 µs per decision at p99.
import { fileURLToPath } from 'node:url';
import { compilePolicy, type CompiledPolicy } from '../../src/data-plane/policy/compile.ts';
import { decide } from '../../src/data-plane/policy/decide.ts';
import { normalizePath } from '../../src/data-plane/policy/normalize-path.ts';
import { parsePolicy } from '../../src/data-plane/policy/parse.ts';
import type { RequestFacts } from '../../src/data-plane/policy/types.ts';

export interface DecisionBenchResult {
  case: string;
  iterations: number;
  p50Us: number;
  p99Us: number;
  p999Us: number;
  meanUs: number;
}

/**
 * A 1,000-route policy of the shapes real services have: 400 exact paths (half of them
 * method-specific), 300 segment prefixes at depths 1-3, 100 patterns, 200 gRPC methods;
 * callers mix single IDs, ID lists, namespaces and trust domains.
 */
export function buildThousandRoutePolicyYaml(): string {
  const routes: string[] = [];
  const caller = (i: number) =>
    i % 4 === 0
      ? `[{ spiffeId: "spiffe://cluster.local/ns/ns${i % 50}/sa/sa${i % 7}" }]`
      : i % 4 === 1
        ? `[${Array.from({ length: 5 }, (_, k) => `{ spiffeId: "spiffe://cluster.local/ns/ns${(i + k) % 50}/sa/sa${k}" }`).join(', ')}]`
        : i % 4 === 2
          ? `[{ namespace: ns${i % 50} }, { namespace: web }]`
          : `[{ trustDomain: partner${i % 5}.example }, { spiffeId: "spiffe://cluster.local/ns/web/sa/frontend" }]`;
  for (let i = 0; i < 400; i++) {
    const methods = i % 2 === 0 ? 'methods: [GET], ' : '';
    routes.push(`        - { name: exact-${i}, port: 8080, ${methods}path: { exact: /api/v1/resource${i}/items }, callers: ${caller(i)} }`);
  }
  for (let i = 0; i < 300; i++) {
    const depth = (i % 3) + 1;
    const prefix = ['/svc' + i, '/group' + (i % 20) + '/svc' + i, '/a/group' + (i % 20) + '/svc' + i][depth - 1];
    routes.push(`        - { name: prefix-${i}, port: 8080, path: { prefix: ${prefix} }, callers: ${caller(i)} }`);
  }
  for (let i = 0; i < 100; i++) {
    routes.push(`        - { name: pattern-${i}, port: 8080, path: { pattern: /tenants/*/res${i}/* }, callers: ${caller(i)} }`);
  }
  for (let i = 0; i < 200; i++) {
    routes.push(`        - { name: grpc-${i}, port: 9090, grpc: { service: bench.v1.Service${i % 20}, method: Method${i} }, callers: ${caller(i)} }`);
  }
  return `apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
spec:
  servers:
    - name: bench
      selector: { serviceAccount: bench }
      default: deny
      ports: [{ port: 8080, protocol: http }, { port: 9090, protocol: grpc }]
      routes:
${routes.join('\n')}
`;
}

export function compileThousandRoutePolicy(pathMatching: 'exact' | 'case-insensitive-trailing-slash' = 'exact'): CompiledPolicy {
  const yaml = buildThousandRoutePolicyYaml().replace('      default: deny\n', `      default: deny\n      pathMatching: ${pathMatching}\n`);
  const parsed = parsePolicy(yaml, 'bench');
  if (!parsed.ok) throw new Error(`bench policy invalid: ${parsed.errors.map((e) => e.message).join('; ')}`);
  return compilePolicy(parsed.policy, { self: { namespace: 'bench', serviceAccount: 'bench' }, meshDefault: 'deny' });
}

const PEER = 'spiffe://cluster.local/ns/web/sa/frontend';

/** Cases: each cycles through a few facts so the branch predictor and caches see some variety. */
export function benchCases(): { name: string; facts: RequestFacts[] }[] {
  const many = <T>(n: number, f: (i: number) => T) => Array.from({ length: n }, (_, i) => f(i));
  return [
    { name: 'exact path', facts: many(64, (i) => ({ peer: PEER, port: 8080, method: 'GET', path: `/api/v1/resource${(i * 7) % 400}/items` })) },
    { name: 'prefix (deep path)', facts: many(64, (i) => ({ peer: PEER, port: 8080, method: 'POST', path: `/a/group${(i * 3 + 2) % 20}/svc${((i * 3 + 2) % 300) - (((i * 3 + 2) % 300) % 3) + 2}/x/y/z` })) },
    { name: 'pattern', facts: many(64, (i) => ({ peer: PEER, port: 8080, method: 'GET', path: `/tenants/t${i}/res${i % 100}/item` })) },
    { name: 'no match (default)', facts: many(64, (i) => ({ peer: PEER, port: 8080, method: 'GET', path: `/nothing/here/${i}/at/all` })) },
    { name: 'gRPC method', facts: many(64, (i) => ({ peer: PEER, port: 9090, method: 'POST', path: `/bench.v1.Service${((i * 11) % 200) % 20}/Method${(i * 11) % 200}` })) },
  ];
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

let samples = new Float64Array(0);

function measure(name: string, iterations: number, fn: (i: number) => unknown): DecisionBenchResult {
  for (let i = 0; i < Math.min(iterations, 50_000); i++) fn(i); // warm-up: let the JIT settle
  // One sample buffer for all cases, and a full GC first when exposed (node --expose-gc): the
  // garbage of parsing the 1,000-route YAML must not be marked during a later case's samples.
  if (samples.length !== iterations) samples = new Float64Array(iterations);
  (globalThis as { gc?: () => void }).gc?.();
  let sink = 0;
  for (let i = 0; i < iterations; i++) {
    const t0 = process.hrtime.bigint();
    const r = fn(i);
    const t1 = process.hrtime.bigint();
    samples[i] = Number(t1 - t0) / 1000;
    if (r === undefined) sink++;
  }
  if (sink === -1) console.log(sink);
  let sum = 0;
  for (const s of samples) sum += s;
  samples.sort();
  return { case: name, iterations, p50Us: percentile(samples, 0.5), p99Us: percentile(samples, 0.99), p999Us: percentile(samples, 0.999), meanUs: sum / iterations };
}

/**
 * Runs every case. Each sample times ONE call with process.hrtime.bigint, so the figures
 * include the timer's own cost (reported as the "timer overhead" row): an upper bound.
 */
export function runPolicyDecisionBench(options: { iterations?: number } = {}): DecisionBenchResult[] {
  const iterations = options.iterations ?? 200_000;
  const compiled = compileThousandRoutePolicy();
  const results = [measure('timer overhead (empty)', iterations, () => 0)];
  for (const c of benchCases()) {
    const n = c.facts.length;
    // Sanity: every case decides as intended (a bench that measures the wrong branch lies).
    results.push(measure(c.name, iterations, (i) => decide(compiled, c.facts[i % n]!)));
  }
  // pathMatching case-insensitive-trailing-slash: the request path is folded before matching
  // (a copy only when it has upper-case letters or a trailing "/").
  const folding = compileThousandRoutePolicy('case-insensitive-trailing-slash');
  const lower = benchCases()[0]!.facts;
  const mixed = lower.map((f) => ({ ...f, path: f.path!.replace('/api/v1/resource', '/API/v1/Resource') + '/' }));
  results.push(measure('exact path, folding mode, lower-case', iterations, (i) => decide(folding, lower[i % lower.length]!)));
  results.push(measure('exact path, folding mode, mixed-case/', iterations, (i) => decide(folding, mixed[i % mixed.length]!)));
  const raw = ['/api/v1/resource12/items', '/a/group3/svc5/x?q=1'];
  results.push(measure('normalizePath fast path', iterations, (i) => normalizePath(raw[i & 1]!)));
  const slow = ['/api//v1/./resource%31%32/items', '/a/b/../group3/%73vc5/x'];
  results.push(measure('normalizePath slow path', iterations, (i) => normalizePath(slow[i & 1]!)));
  return results;
}

export function formatBenchTable(results: DecisionBenchResult[]): string {
  const rows = results.map((r) => [r.case, r.p50Us.toFixed(3), r.p99Us.toFixed(3), r.p999Us.toFixed(3), r.meanUs.toFixed(3)]);
  const head = ['case (1,000-route policy)', 'p50 µs', 'p99 µs', 'p99.9 µs', 'mean µs'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cols: string[]) => cols.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const idx = process.argv.indexOf('--iterations');
  const iterations = idx > 0 ? Number(process.argv[idx + 1]) : undefined;
  const compiled = compileThousandRoutePolicy();
  const check = benchCases().map((c) => `${c.name}: ${decide(compiled, c.facts[0]!).route ?? 'default'} -> ${decide(compiled, c.facts[0]!).decision}`);
  console.log(`node ${process.version}, ${compiled.routes.length} routes; first request of each case: ${check.join('; ')}\n`);
  console.log(formatBenchTable(runPolicyDecisionBench(iterations !== undefined ? { iterations } : {})));
}
