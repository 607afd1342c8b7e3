import { FNV_OFFSET, fnvStep, type CompiledPolicy, type CompiledRoute, type MethodSlot, type PatternNode, type PortTable } from './compile.ts';
import { foldPath } from './route-match.ts';
import type { Decision, RequestFacts } from './types.ts';

/**
 * THE authorization decision: a pure function of a compiled policy and the facts of one
 * request. The sidecar, `meshlet policy explain` and the tests all call it. It returns one of
 * the frozen decisions built at compile time and allocates nothing on the way, except for
 * building "/service/method" when a gRPC caller passes no path, and for the folded path of a
 * server in `case-insensitive-trailing-slash` mode when the request path has upper-case
 * letters or a trailing "/" (exact mode costs one flag test).
 */
export function decide(compiled: CompiledPolicy, facts: RequestFacts): Decision {
  const table = compiled.ports.get(facts.port);
  const authenticated = facts.peer !== null;
  if (!table) return authenticated ? compiled.otherPort.authenticated : compiled.otherPort.unauthenticated;
  const route = matchRoute(table, facts);
  if (route) return route.callers(facts.peer) ? route.allow : route.deny;
  return authenticated ? table.noRoute.authenticated : table.noRoute.unauthenticated;
}

/** The most specific route of a port table matching the request, or null. */
export function matchRoute(table: PortTable, facts: RequestFacts): CompiledRoute | null {
  const method = facts.method ?? '';
  if (table.protocol === 'tcp') return table.portWide ? table.portWide.any : null;
  let path = facts.path ?? (facts.grpc ? `/${facts.grpc.service}/${facts.grpc.method}` : undefined);
  if (path !== undefined) {
    if (table.foldPaths) path = foldPath(path);
    const exact = table.exact.get(path);
    if (exact) {
      const r = pick(exact, method);
      if (r) return r;
    }
    if (table.patterns !== null) {
      const r = matchPattern(table.patterns, path, 0, method);
      if (r) return r;
    }
    if (table.prefixes.size > 0) {
      const r = matchPrefix(table, path, method);
      if (r) return r;
    }
  }
  return table.portWide ? pick(table.portWide, method) : null;
}

function pick(slot: MethodSlot, method: string): CompiledRoute | null {
  if (slot.byMethod !== null) {
    const r = slot.byMethod.get(method);
    if (r) return r;
  }
  return slot.any;
}

/**
 * Walks the path once, hashing as it goes; at every segment boundary (and the whole path) it
 * probes the prefix table. The last hit is the longest matching prefix. No substrings.
 */
function matchPrefix(table: PortTable, path: string, method: string): CompiledRoute | null {
  let best: CompiledRoute | null = null;
  let h = FNV_OFFSET;
  best = probe(table, h, path, 0, method) ?? best;
  const len = path.length;
  for (let i = 0; i < len; i++) {
    const c = path.charCodeAt(i);
    if (c === 0x2f && i > 0) best = probe(table, h, path, i, method) ?? best;
    h = fnvStep(h, c);
  }
  if (len > 1 && path.charCodeAt(len - 1) !== 0x2f) best = probe(table, h, path, len, method) ?? best;
  return best;
}

function probe(table: PortTable, h: number, path: string, length: number, method: string): CompiledRoute | null {
  const entries = table.prefixes.get(h);
  if (entries === undefined) return null;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    if (e.value.length === length && path.startsWith(e.value)) return pick(e.slot, method);
  }
  return null;
}

/**
 * Depth-first through the pattern trie from the "/" at `pos`: the literal child first, then
 * "*" (one non-empty segment). A path that matches a pattern but not its methods goes on to
 * the next candidate, as everywhere else.
 */
function matchPattern(node: PatternNode, path: string, pos: number, method: string): CompiledRoute | null {
  const len = path.length;
  if (pos === len) return node.slot !== null ? pick(node.slot, method) : null;
  const start = pos + 1;
  let end = start;
  let h = FNV_OFFSET;
  while (end < len) {
    const c = path.charCodeAt(end);
    if (c === 0x2f) break;
    h = fnvStep(h, c);
    end++;
  }
  if (node.literals !== null) {
    const entries = node.literals.get(h);
    if (entries !== undefined) {
      for (let i = 0; i < entries.length; i++) {
        const e = entries[i]!;
        if (e.segment.length === end - start && path.startsWith(e.segment, start)) {
          const r = matchPattern(e.node, path, end, method);
          if (r) return r;
        }
      }
    }
  }
  if (node.wildcard !== null && end > start) return matchPattern(node.wildcard, path, end, method);
  return null;
}
