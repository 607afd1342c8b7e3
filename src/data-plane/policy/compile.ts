import { DEFAULT_TRUST_DOMAIN } from '../../common/identity/spiffe-id.ts';
import { anyAuthenticated, exactId, namespace, oneOf, trustDomain, unauthenticated, type CallerMatcher } from './callers.ts';
import { routeMatchOf, type RouteMatch } from './route-match.ts';
import { compileClient, type CompiledClient } from './client-policy.ts';
import type { Caller, ClientMeshDefault, Decision, DecisionCode, DefaultPolicy, EnforcementMode, PathMatching, Policy, PortProtocol, Route, Server, WorkloadSelf } from './types.ts';

/**
 * Compiles a validated policy into the route tables of ONE workload, once per reload. Every
 * decision the hot path can return is built here, frozen, and handed out by reference, so a
 * decision allocates nothing.
 *
 * Precedence (docs/policy.md), most specific first:
 *   exact path > pattern > longest segment prefix > port-wide > the server default;
 * at one path match, a method-specific route beats an any-method route, and a route scoped
 * to the port beats one that applies to every port. Two routes left tied are refused by
 * `parsePolicy` (POLICY_AMBIGUOUS_ROUTE), so declaration order never decides.
 *
 * HEAD is authorized as the GET the app will run (Express, Spring MVC, Go's ServeMux, Flask
 * all answer HEAD with their GET handler): a route listing GET is also filed under HEAD, so a
 * GET-only route decides HEAD requests exactly as it decides GET ones. In
 * `case-insensitive-trailing-slash` mode every path value is folded here (foldPath) and
 * decide() folds the request path the same way.
 */

export interface CompiledRoute {
  readonly name: string;
  readonly match: RouteMatch;
  readonly methods: readonly string[] | null;
  readonly callers: CallerMatcher;
  readonly allow: Decision;
  readonly deny: Decision;
  readonly source: Route;
}

/** Routes that share one path match, by method. */
export interface MethodSlot {
  byMethod: Map<string, CompiledRoute> | null;
  any: CompiledRoute | null;
}

export interface PrefixEntry {
  readonly value: string;
  readonly slot: MethodSlot;
}

/**
 * A segment trie of the patterns of one port. Literal children are keyed by the FNV hash of
 * the segment, so the request path is walked without cutting substrings; at every level a
 * literal child is tried before the "*" child, which is the pattern precedence (a literal beats
 * "*" at the first segment where two patterns differ).
 */
export interface PatternNode {
  literals: Map<number, { readonly segment: string; readonly node: PatternNode }[]> | null;
  wildcard: PatternNode | null;
  slot: MethodSlot | null;
}

/** Default decisions for a peer that is / is not authenticated. */
export interface DefaultDecisions {
  readonly authenticated: Decision;
  readonly unauthenticated: Decision;
}

export interface PortTable {
  readonly port: number;
  readonly protocol: PortProtocol;
  readonly exact: Map<string, MethodSlot>;
  /** Keyed by a hash of the prefix, so lookups along the request path need no substrings. */
  readonly prefixes: Map<number, PrefixEntry[]>;
  readonly patterns: PatternNode | null;
  readonly portWide: MethodSlot | null;
  readonly noRoute: DefaultDecisions;
  /** The server's pathMatching is case-insensitive-trailing-slash: decide() folds the request path. */
  readonly foldPaths: boolean;
}

export interface CompiledPolicy {
  /** The server of the policy that applies to this workload, or null (no policy applies). */
  readonly server: string | null;
  readonly ports: ReadonlyMap<number, PortTable>;
  /** Decisions for a port the server does not declare, or for every port when no policy applies. */
  readonly otherPort: DefaultDecisions;
  readonly defaultPolicy: DefaultPolicy;
  readonly mode: EnforcementMode;
  readonly pathMatching: PathMatching;
  readonly routes: readonly CompiledRoute[];
  readonly policy: Policy | null;
  /**
   * The client side of the same document for this workload (client-policy.ts): what its
   * outbound may call. Null when nothing restricts it (no client selects it and the mesh client
   * default is `allow`), so the outbound decides nothing.
   */
  readonly client: CompiledClient | null;
}

export interface CompileOptions {
  self: WorkloadSelf;
  /** The mesh-level default (sidecar setting MESHLET_DEFAULT_POLICY). */
  meshDefault: DefaultPolicy;
  /** The mesh-level client default (sidecar setting MESHLET_DEFAULT_CLIENT_POLICY); default `allow`. */
  meshClientDefault?: ClientMeshDefault;
}

/** FNV-1a step; the same function hashes prefixes at compile time and request paths at decide time. */
export const FNV_OFFSET = 0x811c9dc5;
export function fnvStep(h: number, c: number): number {
  return Math.imul(h ^ c, 0x01000193);
}
export function fnvString(s: string): number {
  let h = FNV_OFFSET;
  for (let i = 0; i < s.length; i++) h = fnvStep(h, s.charCodeAt(i));
  return h;
}

function decision(d: Omit<Decision, never>): Decision {
  return Object.freeze({ ...d });
}

/** A denial, or under audit mode the allow that records it. */
function denial(mode: EnforcementMode, route: string | null, code: DecisionCode, reason: string): Decision {
  return mode === 'audit'
    ? decision({ decision: 'allow', route, code, reason: `audit: would deny: ${reason}`, mode: 'audit', wouldDeny: true })
    : decision({ decision: 'deny', route, code, reason, mode: 'enforce', wouldDeny: false });
}

function defaults(policy: DefaultPolicy, mode: EnforcementMode, code: DecisionCode, what: string): DefaultDecisions {
  switch (policy) {
    case 'deny': {
      const d = denial(mode, null, code, `${what}; default policy is deny`);
      return { authenticated: d, unauthenticated: d };
    }
    case 'audit': {
      const d = decision({ decision: 'allow', route: null, code, reason: `audit: would deny: ${what}; default policy is audit`, mode: 'audit', wouldDeny: true });
      return { authenticated: d, unauthenticated: d };
    }
    case 'all-authenticated':
      return {
        authenticated: decision({ decision: 'allow', route: null, code, reason: `${what}; default policy all-authenticated allows any authenticated caller`, mode: 'enforce', wouldDeny: false }),
        unauthenticated: denial(mode, null, code, `${what}; default policy all-authenticated denies an unauthenticated caller`),
      };
  }
}

/** The server of `policy` that selects this workload: the first whose selector matches. */
export function selectServer(policy: Policy, self: WorkloadSelf): Server | null {
  if (policy.metadata?.namespace !== undefined && policy.metadata.namespace !== self.namespace) return null;
  for (const server of policy.spec.servers) {
    const { serviceAccount, matchLabels } = server.selector;
    if (serviceAccount !== undefined && serviceAccount !== self.serviceAccount) continue;
    if (matchLabels && !Object.entries(matchLabels).every(([k, v]) => self.labels?.[k] === v)) continue;
    return server;
  }
  return null;
}

/**
 * Caller lists shared through a YAML alias are one array (toJS and the worker's structured
 * clone both keep shared references): compiled once, not once per route.
 */
type CallerCache = Map<readonly Caller[], CallerMatcher>;

function compileCallers(route: Route, td: string, cache: CallerCache): CallerMatcher {
  let m = cache.get(route.callers);
  if (m === undefined) cache.set(route.callers, (m = buildCallers(route, td)));
  return m;
}

function buildCallers(route: Route, td: string): CallerMatcher {
  const ids: string[] = [];
  const matchers: CallerMatcher[] = [];
  for (const c of route.callers) {
    if ('spiffeId' in c) ids.push(c.spiffeId);
    else if ('namespace' in c) matchers.push(namespace(c.trustDomain ?? td, c.namespace));
    else if ('trustDomain' in c) matchers.push(trustDomain(c.trustDomain));
    else if ('anyAuthenticated' in c) matchers.push(anyAuthenticated());
    else if ('unauthenticated' in c) matchers.push(unauthenticated());
  }
  // A route with exactly one exact caller is the commonest shape: keep it a single compare.
  if (ids.length === 1 && matchers.length === 0) return exactId(ids[0]!);
  return oneOf(matchers, ids);
}

function compileRoute(route: Route, mode: EnforcementMode, td: string, pathMatching: PathMatching, callerCache: CallerCache): CompiledRoute {
  return Object.freeze({
    name: route.name,
    match: routeMatchOf(route, pathMatching),
    methods: route.methods ? Object.freeze([...route.methods]) : null,
    callers: compileCallers(route, td, callerCache),
    allow: decision({ decision: 'allow', route: route.name, code: 'route-allowed', reason: `caller is authorized by route "${route.name}"`, mode: 'enforce', wouldDeny: false }),
    deny: denial(mode, route.name, 'caller-not-allowed', `caller is not authorized by route "${route.name}"`),
    source: route,
  });
}

/** Adds a route to a slot without displacing a more specific one already there. */
function addToSlot(slot: MethodSlot, route: CompiledRoute): void {
  if (route.methods === null) {
    slot.any ??= route;
    return;
  }
  slot.byMethod ??= new Map();
  for (const m of route.methods) if (!slot.byMethod.has(m)) slot.byMethod.set(m, route);
  // A HEAD request runs the app's GET handler: it is decided by the GET route.
  if (route.methods.includes('GET') && !slot.byMethod.has('HEAD')) slot.byMethod.set('HEAD', route);
}

function slotFor<K>(map: Map<K, MethodSlot>, key: K): MethodSlot {
  let slot = map.get(key);
  if (!slot) map.set(key, (slot = { byMethod: null, any: null }));
  return slot;
}

function newPatternNode(): PatternNode {
  return { literals: null, wildcard: null, slot: null };
}

function patternSlot(root: PatternNode, pattern: string): MethodSlot {
  let node = root;
  for (const segment of pattern.split('/').slice(1)) {
    if (segment === '*') {
      node = node.wildcard ??= newPatternNode();
      continue;
    }
    node.literals ??= new Map();
    const h = fnvString(segment);
    const list = node.literals.get(h) ?? [];
    let child = list.find((e) => e.segment === segment)?.node;
    if (!child) {
      child = newPatternNode();
      list.push({ segment, node: child });
      node.literals.set(h, list);
    }
    node = child;
  }
  return (node.slot ??= { byMethod: null, any: null });
}

function compilePort(port: number, protocol: PortProtocol, routes: CompiledRoute[], noRoute: DefaultDecisions, foldPaths: boolean): PortTable {
  const exact = new Map<string, MethodSlot>();
  const prefixSlots = new Map<string, MethodSlot>();
  let patterns: PatternNode | null = null;
  let portWide: MethodSlot | null = null;
  for (const r of routes) {
    if (protocol === 'tcp' && (r.match.kind !== 'port-wide' || r.methods !== null)) continue;
    switch (r.match.kind) {
      case 'exact':
        addToSlot(slotFor(exact, r.match.value), r);
        break;
      case 'prefix':
        addToSlot(slotFor(prefixSlots, r.match.value), r);
        break;
      case 'pattern':
        patterns ??= newPatternNode();
        addToSlot(patternSlot(patterns, r.match.value), r);
        break;
      case 'port-wide':
        portWide ??= { byMethod: null, any: null };
        addToSlot(portWide, r);
        break;
    }
  }
  const prefixes = new Map<number, PrefixEntry[]>();
  for (const [value, slot] of prefixSlots) {
    const h = fnvString(value);
    const list = prefixes.get(h) ?? [];
    list.push({ value, slot });
    prefixes.set(h, list);
  }
  return { port, protocol, exact, prefixes, patterns, portWide, noRoute, foldPaths };
}

/** Builds the route tables of `self` from `policy` (null = no policy exists). */
export function compilePolicy(policy: Policy | null, options: CompileOptions): CompiledPolicy {
  const client = compileClient(policy, options.self, options.meshClientDefault ?? 'allow');
  const server = policy ? selectServer(policy, options.self) : null;
  if (!policy || !server) {
    const why = policy ? 'no server of the policy selects this workload' : 'no policy exists';
    return Object.freeze({
      server: null,
      ports: new Map(),
      otherPort: defaults(options.meshDefault, 'enforce', 'no-policy', why),
      defaultPolicy: options.meshDefault,
      mode: 'enforce' as const,
      pathMatching: 'exact' as const,
      routes: [],
      policy,
      client,
    });
  }
  const mode = server.mode ?? 'enforce';
  const defaultPolicy = server.default ?? options.meshDefault;
  const td = options.self.trustDomain ?? DEFAULT_TRUST_DOMAIN;
  const pathMatching = server.pathMatching ?? 'exact';
  const callerCache: CallerCache = new Map();
  const routes = server.routes.map((r) => compileRoute(r, mode, td, pathMatching, callerCache));
  const ports = new Map<number, PortTable>();
  const noRoute = defaults(defaultPolicy, mode, 'no-route-matched', `no route of server "${server.name}" matches`);
  const unscoped = routes.filter((r) => r.source.port === undefined);
  const scopedPorts = new Set(routes.map((r) => r.source.port));
  // Ports of one protocol with no routes of their own have identical tables: build one, share it.
  const shared = new Map<PortProtocol, PortTable>();
  const fold = pathMatching !== 'exact';
  for (const p of server.ports) {
    if (!scopedPorts.has(p.port)) {
      const same = shared.get(p.protocol);
      if (same) {
        ports.set(p.port, { ...same, port: p.port });
        continue;
      }
      const table = compilePort(p.port, p.protocol, unscoped, noRoute, fold);
      shared.set(p.protocol, table);
      ports.set(p.port, table);
      continue;
    }
    // Port-scoped routes go in first so that, at an equal match, they win over unscoped ones.
    const scoped = routes.filter((r) => r.source.port === p.port);
    ports.set(p.port, compilePort(p.port, p.protocol, [...scoped, ...unscoped], noRoute, fold));
  }
  return Object.freeze({
    server: server.name,
    ports,
    otherPort: defaults(defaultPolicy, mode, 'port-not-declared', `port is not declared by server "${server.name}"`),
    defaultPolicy,
    mode,
    pathMatching,
    routes,
    policy,
    client,
  });
}
