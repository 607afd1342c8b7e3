import { DEFAULT_TRUST_DOMAIN, parseSpiffeId, validateTrustDomain } from '../../common/identity/spiffe-id.ts';
import { normalizePath } from './normalize-path.ts';
import { describeRouteMatch, routeMatchOf, type RouteMatch } from './route-match.ts';
import { isIP } from 'node:net';
import type { Caller, Client, ClientDestination, Policy, Route, Server } from './types.ts';

/** A finding before it is located in the source text. */
export interface Finding {
  severity: 'error' | 'warning';
  code: string;
  message: string;
  at: (string | number)[];
  /** Point at the key of the last path element rather than its value (unknown fields). */
  onKey?: boolean;
}

/**
 * The checks a schema cannot express. Errors make the policy invalid; warnings describe
 * things that are legal but almost certainly not what the owner meant.
 */
export function semanticChecks(policy: Policy): Finding[] {
  const out: Finding[] = [];
  const err = (code: string, at: Finding['at'], message: string) => out.push({ severity: 'error', code, message, at });
  const warn = (code: string, at: Finding['at'], message: string) => out.push({ severity: 'warning', code, message, at });

  const serverNames = new Map<string, number>();
  const routeNames = new Map<string, string>();
  const selectors = new Map<string, number>();
  policy.spec.servers.forEach((server, s) => {
    const sAt = ['spec', 'servers', s];
    const firstServer = serverNames.get(server.name);
    if (firstServer !== undefined) err('POLICY_DUPLICATE_SERVER', [...sAt, 'name'], `server name "${server.name}" is already used by spec.servers[${firstServer}]`);
    else serverNames.set(server.name, s);

    const selectorKey = JSON.stringify([server.selector.serviceAccount ?? null, Object.entries(server.selector.matchLabels ?? {}).sort()]);
    const sameSelector = selectors.get(selectorKey);
    if (sameSelector !== undefined) {
      warn('POLICY_SHADOWED_SERVER', [...sAt, 'selector'], `server "${server.name}" has the same selector as spec.servers[${sameSelector}], which comes first and wins: this server never applies`);
    } else selectors.set(selectorKey, s);

    const ports = new Map<number, string>();
    server.ports.forEach((p, i) => {
      if (ports.has(p.port)) err('POLICY_DUPLICATE_PORT', [...sAt, 'ports', i, 'port'], `port ${p.port} is declared twice`);
      else ports.set(p.port, p.protocol);
    });

    server.routes.forEach((route, r) => {
      const rAt = [...sAt, 'routes', r];
      const firstRoute = routeNames.get(route.name);
      if (firstRoute !== undefined) err('POLICY_DUPLICATE_ROUTE', [...rAt, 'name'], `route name "${route.name}" is already used by ${firstRoute}`);
      else routeNames.set(route.name, formatPath(rAt));
      checkRoute(server, route, rAt, ports, err, warn);
    });
    checkAmbiguousRoutes(server, sAt, ports, err, warn);
    checkDenyInsideAllow(server, sAt, ports, warn);
  });
  checkClients(policy.spec.clients ?? [], err, warn);
  return out;
}

/** The kinds of a client destination: exactly one, `namespace` also going with `trustDomain` (an identity) or `service`. */
const DESTINATION_KINDS = ['spiffeId', 'namespace', 'trustDomain', 'anyAuthenticated', 'service', 'host', 'cidr'] as const;

/**
 * The client side (issue 16): client names unique, destination names unique in the document
 * (they name the entry in denials, metrics and the decision log), each destination exactly one
 * kind with a well-formed value, and a client whose selector an earlier client already has
 * (it never applies: the first match wins, as for servers).
 */
function checkClients(clients: readonly Client[], err: Report, warn: Report): void {
  const clientNames = new Map<string, number>();
  const destinationNames = new Map<string, string>();
  const selectors = new Map<string, number>();
  clients.forEach((client, c) => {
    const cAt = ['spec', 'clients', c];
    const first = clientNames.get(client.name);
    if (first !== undefined) err('POLICY_DUPLICATE_CLIENT', [...cAt, 'name'], `client name "${client.name}" is already used by spec.clients[${first}]`);
    else clientNames.set(client.name, c);
    const selectorKey = JSON.stringify([client.selector.serviceAccount ?? null, Object.entries(client.selector.matchLabels ?? {}).sort()]);
    const same = selectors.get(selectorKey);
    if (same !== undefined) warn('POLICY_SHADOWED_CLIENT', [...cAt, 'selector'], `client "${client.name}" has the same selector as spec.clients[${same}], which comes first and wins: this client never applies`);
    else selectors.set(selectorKey, c);
    client.destinations.forEach((d, i) => {
      const dAt = [...cAt, 'destinations', i];
      const firstName = destinationNames.get(d.name);
      if (firstName !== undefined) err('POLICY_DUPLICATE_DESTINATION', [...dAt, 'name'], `destination name "${d.name}" is already used by ${firstName}`);
      else destinationNames.set(d.name, formatPath(dAt));
      checkDestination(d, dAt, err);
    });
  });
}

function checkDestination(d: ClientDestination, at: Finding['at'], err: Report): void {
  const kinds = DESTINATION_KINDS.filter((k) => k in d);
  const paired = kinds.length === 2 && kinds.includes('namespace') && (kinds.includes('trustDomain') || kinds.includes('service'));
  if (kinds.length !== 1 && !paired) {
    const found = kinds.length === 0 ? 'none' : kinds.join(', ');
    err('POLICY_BAD_DESTINATION', at, `a destination is exactly one of spiffeId, namespace (with an optional trustDomain), trustDomain, anyAuthenticated, service (with an optional namespace), host, cidr (found ${found})`);
    return;
  }
  if ('spiffeId' in d) {
    try {
      parseSpiffeId(d.spiffeId);
    } catch (e) {
      err('POLICY_BAD_SPIFFE_ID', [...at, 'spiffeId'], (e as Error).message);
    }
  }
  if ('trustDomain' in d && d.trustDomain !== undefined) {
    try {
      validateTrustDomain(d.trustDomain);
    } catch (e) {
      err('POLICY_BAD_TRUST_DOMAIN', [...at, 'trustDomain'], (e as Error).message.replace(/^invalid SPIFFE ID/, 'invalid trust domain'));
    }
  }
  if ('host' in d) {
    const problem = hostPatternProblem(d.host);
    if (problem !== null) err('POLICY_BAD_HOST', [...at, 'host'], problem);
  }
  if ('cidr' in d) {
    const problem = cidrProblem(d.cidr);
    if (problem !== null) err('POLICY_BAD_CIDR', [...at, 'cidr'], problem);
  }
}

const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;

/** Why `host` is not a DNS name or `*.suffix`, or null when it is one. */
export function hostPatternProblem(host: string): string | null {
  if (isIP(host) !== 0 || isIP(host.replace(/^\[|\]$/g, '')) !== 0) return `host "${host}" is an IP address: use cidr: ${isIP(host) === 6 || host.startsWith('[') ? `${host.replace(/^\[|\]$/g, '')}/128` : `${host}/32`}`;
  const name = host.startsWith('*.') ? host.slice(2) : host;
  if (name.includes('*')) return `host "${host}": "*" is allowed only as the whole first label ("*.example.com")`;
  if (name.endsWith('.')) return `host "${host}" ends with ".": write the name without the trailing dot`;
  const labels = name.split('.');
  if (labels.some((l) => !DNS_LABEL.test(l))) return `host "${host}" is not a DNS name (labels of letters, digits and "-", 1 to 63 characters, separated by ".")`;
  return null;
}

/** Why `cidr` is not ADDRESS/PREFIX (IPv4 or IPv6), or null when it is one. */
export function cidrProblem(cidr: string): string | null {
  const slash = cidr.indexOf('/');
  if (slash === -1) return isIP(cidr) !== 0 ? `cidr "${cidr}" has no prefix length: write ${cidr}/${isIP(cidr) === 4 ? 32 : 128} for one address` : `cidr "${cidr}" is not ADDRESS/PREFIX`;
  const address = cidr.slice(0, slash);
  const prefixText = cidr.slice(slash + 1);
  const family = isIP(address);
  if (family === 0) return `cidr "${cidr}": "${address}" is not an IPv4 or IPv6 address`;
  const max = family === 4 ? 32 : 128;
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > max) return `cidr "${cidr}": the prefix length must be 0 to ${max}`;
  return null;
}

type Report = (code: string, at: Finding['at'], message: string) => void;

function checkRoute(server: Server, route: Route, rAt: Finding['at'], ports: Map<number, string>, err: Report, warn: Report): void {
  const hasHttpMatch = route.path !== undefined || route.grpc !== undefined || route.methods !== undefined;
  if (route.port !== undefined) {
    const protocol = ports.get(route.port);
    if (protocol === undefined) err('POLICY_UNDECLARED_PORT', [...rAt, 'port'], `port ${route.port} is not declared in the ports of server "${server.name}"`);
    else if (protocol === 'tcp' && hasHttpMatch) {
      err('POLICY_HTTP_MATCH_ON_TCP', rAt, `route "${route.name}" matches on method, path or gRPC but port ${route.port} is opaque tcp: only callers can be matched there`);
    }
  } else if (hasHttpMatch && [...ports.values()].every((p) => p === 'tcp')) {
    warn('POLICY_UNREACHABLE_ROUTE', rAt, `route "${route.name}" matches on method, path or gRPC but every port of server "${server.name}" is opaque tcp: it never applies`);
  }
  if (route.path && route.grpc) err('POLICY_CONFLICTING_MATCH', rAt, 'a route matches either "path" or "grpc", not both');
  if (route.path) {
    const keys = Object.keys(route.path);
    if (keys.length > 1) err('POLICY_CONFLICTING_MATCH', [...rAt, 'path'], `path must have exactly one of exact, prefix, pattern (found ${keys.join(', ')})`);
    for (const kind of keys as ('exact' | 'prefix' | 'pattern')[]) {
      const value = (route.path as Record<string, string>)[kind]!;
      checkPathValue(kind, value, [...rAt, 'path', kind], err);
    }
  }
  if (route.methods) {
    const seen = new Set<string>();
    route.methods.forEach((m, i) => {
      if (seen.has(m)) warn('POLICY_DUPLICATE_METHOD', [...rAt, 'methods', i], `method ${m} is listed twice`);
      seen.add(m);
    });
  }
  let authenticatedCallers = 0;
  let anyAuthenticated = false;
  route.callers.forEach((caller, c) => {
    const cAt = [...rAt, 'callers', c];
    checkCaller(caller, cAt, err, warn);
    if ('anyAuthenticated' in caller) anyAuthenticated = true;
    else if (!('unauthenticated' in caller)) authenticatedCallers++;
  });
  if (anyAuthenticated && authenticatedCallers > 0) {
    warn('POLICY_REDUNDANT_CALLER', [...rAt, 'callers'], `route "${route.name}" allows anyAuthenticated, so its other authenticated callers add nothing`);
  }
}

function checkPathValue(kind: 'exact' | 'prefix' | 'pattern', value: string, at: Finding['at'], err: Report): void {
  let candidate = value;
  if (kind === 'pattern') {
    const segments = value.split('/').slice(1);
    if (segments.some((s) => s.includes('*') && s !== '*')) {
      err('POLICY_BAD_PATTERN', at, `pattern "${value}": "*" must be a whole segment (it matches exactly one segment)`);
      return;
    }
    if (!segments.includes('*')) {
      err('POLICY_BAD_PATTERN', at, `pattern "${value}" has no "*" segment: use exact instead`);
      return;
    }
    candidate = value.replace(/\*/g, 'x');
  }
  const n = normalizePath(candidate);
  if (!n.ok) {
    err('POLICY_PATH_NOT_NORMALIZED', at, `${kind} path "${value}" can never match: ${n.reason}`);
  } else if (n.path !== candidate || n.query !== '') {
    err('POLICY_PATH_NOT_NORMALIZED', at, `${kind} path "${value}" can never match: requests are matched after normalization, write it as "${kind === 'pattern' ? value : n.path}"`);
  }
}

function checkCaller(caller: Caller, at: Finding['at'], err: Report, warn: Report): void {
  const kinds = Object.keys(caller);
  const main = kinds.filter((k) => k !== 'trustDomain');
  if (main.length > 1 || (main.length === 1 && kinds.includes('trustDomain') && main[0] !== 'namespace')) {
    err('POLICY_BAD_CALLER', at, `a caller is exactly one of spiffeId, namespace (with an optional trustDomain), trustDomain, anyAuthenticated, unauthenticated (found ${kinds.join(', ')})`);
    return;
  }
  if ('spiffeId' in caller) {
    try {
      parseSpiffeId(caller.spiffeId);
    } catch (e) {
      err('POLICY_BAD_SPIFFE_ID', [...at, 'spiffeId'], (e as Error).message);
    }
  }
  if ('trustDomain' in caller && caller.trustDomain !== undefined) {
    try {
      validateTrustDomain(caller.trustDomain);
    } catch (e) {
      err('POLICY_BAD_TRUST_DOMAIN', [...at, 'trustDomain'], (e as Error).message.replace(/^invalid SPIFFE ID/, 'invalid trust domain'));
    }
  }
  if ('unauthenticated' in caller) {
    warn('POLICY_UNAUTHENTICATED_CALLER', at, 'unauthenticated matches only plaintext callers, which reach the app only on a PERMISSIVE port');
  }
}

/** Methods as a request sees them: a HEAD request is decided by GET routes (compile.ts). */
function effectiveMethods(methods: readonly string[]): readonly string[] {
  return methods.includes('GET') && !methods.includes('HEAD') ? [...methods, 'HEAD'] : methods;
}

/** Whether two routes can match the same method (absent = any), HEAD counting as GET. */
function methodsOverlap(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  if (!a || !b) return true;
  const eb = effectiveMethods(b);
  return effectiveMethods(a).some((m) => eb.includes(m));
}

/**
 * Two routes of one server that match the same requests (same tier and value as the server's
 * path matching mode compares them, overlapping ports and methods, HEAD counting as GET) would
 * need a tie-break; meshlet refuses the policy instead, so the route that decides is never an
 * accident of declaration order. Routes are grouped by match first, so this is linear in routes.
 */
function checkAmbiguousRoutes(server: Server, sAt: Finding['at'], ports: Map<number, string>, err: Report, warn: Report): void {
  const groups = new Map<string, Route[]>();
  const mode = server.pathMatching ?? 'exact';
  server.routes.forEach((route, r) => {
    if (route.path && Object.keys(route.path).length !== 1) return;
    const m = routeMatchOf(route, mode);
    const key = `${m.kind} ${m.value}`;
    const same = groups.get(key) ?? [];
    for (const other of same) {
      if (route.port !== undefined && other.port !== undefined && route.port !== other.port) continue;
      if (!methodsOverlap(route.methods, other.methods)) continue;
      // Scoped vs unscoped on the same match: the port-scoped one is more specific, no tie.
      if ((route.port === undefined) !== (other.port === undefined)) continue;
      // Method-specific vs any-method on the same match: method-specific wins, no tie.
      if (!route.methods !== !other.methods) continue;
      const viaHead = route.methods && other.methods && !route.methods.some((x) => other.methods!.includes(x)) ? ' (a HEAD request is decided by the routes listing GET)' : '';
      const folded = mode !== 'exact' && routeMatchOf(route).value !== routeMatchOf(other).value ? ` (pathMatching ${mode} compares them as equal)` : '';
      err('POLICY_AMBIGUOUS_ROUTE', [...sAt, 'routes', r], `route "${route.name}" matches the same requests as route "${other.name}" (${key === 'port-wide ' ? 'port-wide' : key})${folded}${viaHead}; make them distinct or merge their callers`);
    }
    same.push(route);
    groups.set(key, same);
  });
  // A port-wide route on an HTTP/gRPC port is unreachable when a root prefix with any method covers the same ports.
  const rootAny = server.routes.filter((r) => !r.grpc && r.path && 'prefix' in r.path && routeMatchOf(r).value === '' && !r.methods);
  server.routes.forEach((route, r) => {
    if (routeMatchOf(route).kind !== 'port-wide' || route.methods) return;
    const scopedPorts = route.port !== undefined ? [route.port] : [...ports.keys()];
    const httpPorts = scopedPorts.filter((p) => ports.get(p) !== 'tcp');
    if (httpPorts.length === 0) return;
    const covering = rootAny.find((o) => httpPorts.every((p) => o.port === undefined || o.port === p));
    if (covering && scopedPorts.every((p) => ports.get(p) !== 'tcp')) {
      warn('POLICY_SHADOWED_ROUTE', [...sAt, 'routes', r], `route "${route.name}" is port-wide, but route "${covering.name}" (prefix /, any method) takes precedence over it for every request: it never applies`);
    }
  });
}

/**
 * "Deny inside allow": a narrower route that lets fewer callers in than something enclosing
 * it (a pattern, a shorter prefix, a port-wide route, or a server `default: all-authenticated`).
 * Its protection holds only for the exact spelling of its path: an app whose router ignores
 * case runs the same handler for /ADMIN, one that ignores a trailing slash for /admin/, and what
 * encloses the route decides those. Warned in `exact` mode only: `case-insensitive-trailing-slash`
 * closes both (and HEAD is decided as GET in every mode).
 */
function checkDenyInsideAllow(server: Server, sAt: Finding['at'], ports: Map<number, string>, warn: Report): void {
  if ((server.pathMatching ?? 'exact') !== 'exact') return;
  interface Entry {
    route: Route;
    m: RouteMatch;
    /** m.value split at "/", once: patterns are compared segment by segment. */
    segments: string[];
    httpPorts: number[];
  }
  const httpPortsOf = (route: Route): number[] => (route.port !== undefined ? [route.port] : [...ports.keys()]).filter((p) => ports.has(p) && ports.get(p) !== 'tcp');
  const entries: Entry[] = server.routes.map((route) => {
    const m = routeMatchOf(route);
    return { route, m, segments: m.value.split('/'), httpPorts: httpPortsOf(route) };
  });
  const isPathRoute = (e: Entry): boolean => !e.route.grpc && e.httpPorts.length > 0 && e.route.path !== undefined && Object.keys(e.route.path).length === 1;
  const prefixes = new Map<string, Entry[]>();
  const patterns: Entry[] = [];
  const portWide: Entry[] = [];
  for (const e of entries) {
    if (isPathRoute(e) && e.m.kind === 'prefix') {
      const list = prefixes.get(e.m.value);
      if (list) list.push(e);
      else prefixes.set(e.m.value, [e]);
    } else if (isPathRoute(e) && e.m.kind === 'pattern') patterns.push(e);
    else if (!e.route.grpc && e.m.kind === 'port-wide' && e.httpPorts.length > 0) portWide.push(e);
  }

  entries.forEach((n, r) => {
    if (!isPathRoute(n)) return;
    const route = n.route;
    const allowsMore = (e: Entry): boolean =>
      e !== n && e.httpPorts.some((p) => n.httpPorts.includes(p)) && methodsOverlap(route.methods, e.route.methods) && !callersCover(route.callers, e.route.callers);
    // What encloses the route, most specific first: patterns, prefixes longest first, port-wide routes.
    const enclosing: Entry[] = [
      ...patterns.filter((e) => patternEncloses(e.segments, n)),
      ...segmentAncestors(n.m).flatMap((p) => prefixes.get(p) ?? []),
      ...portWide,
    ];
    let found: { by: Entry | null; caseVariant: string | null; slashVariant: string | null } | undefined;
    for (const e of enclosing) {
      if (!allowsMore(e)) continue;
      const variants = bypassVariants(n.m, e.m);
      if (variants.caseVariant !== null || variants.slashVariant !== null) {
        found = { by: e, ...variants };
        break;
      }
    }
    if (!found && server.default === 'all-authenticated' && !callersCover(route.callers, [{ anyAuthenticated: true }])) {
      const variants = bypassVariants(n.m, null);
      if (variants.caseVariant !== null || variants.slashVariant !== null) found = { by: null, ...variants };
    }
    if (!found) return;
    const what = found.by === null ? 'the server default all-authenticated, which decides every request no route matches' : `route "${found.by.route.name}" (${describeRouteMatch(found.by.route)}), which encloses it`;
    const decider = found.by === null ? 'the default' : `route "${found.by.route.name}"`;
    const routers: string[] = [];
    if (found.caseVariant !== null) routers.push(`that matches paths case-insensitively (Express by default, ASP.NET Core) runs the same handler for ${found.caseVariant}`);
    if (found.slashVariant !== null) routers.push(`that ignores a trailing slash (Express by default, ASP.NET Core, Spring MVC before 6) for ${found.slashVariant}`);
    warn(
      'POLICY_DENY_INSIDE_ALLOW',
      [...sAt, 'routes', r],
      `route "${route.name}" (${describeRouteMatch(route)}) allows fewer callers than ${what}: an app router ${routers.join(', and one ')}, and ${decider} decides those requests. ` +
        `If the app's router does so, set "pathMatching: case-insensitive-trailing-slash" on server "${server.name}"; better, list only the paths the wider route means to open (docs/policy.md#deny-inside-allow)`,
    );
  });
}

/**
 * The spellings of a restricted route's paths that an app router may treat as the same path
 * and that still fall under `by` (null: nothing but the default). A case variant keeps the
 * letters `by` pins (its prefix, the literal segments of its pattern); a trailing-slash
 * variant exists for exact and pattern routes (a prefix already covers it) and never falls
 * under a pattern (a "*" is one non-empty segment).
 */
function bypassVariants(n: RouteMatch, by: RouteMatch | null): { caseVariant: string | null; slashVariant: string | null } {
  const v = n.value;
  let variant: string;
  if (by === null || by.kind === 'port-wide') variant = v.toUpperCase();
  else if (by.kind === 'prefix') variant = v.slice(0, by.value.length) + v.slice(by.value.length).toUpperCase();
  else {
    const qs = by.value.split('/');
    variant = v
      .split('/')
      .map((seg, i) => (qs[i] === '*' ? seg.toUpperCase() : seg))
      .join('/');
  }
  const caseVariant = variant !== v ? (n.kind === 'prefix' ? `${variant}/…` : variant) : null;
  const slashVariant = n.kind !== 'prefix' && v !== '/' && by?.kind !== 'pattern' ? (v.endsWith('/') ? v.slice(0, -1) : `${v}/`) : null;
  return { caseVariant, slashVariant };
}

/** The segment prefixes that enclose every path of a match, longest first ("" = the root prefix). */
function segmentAncestors(m: RouteMatch): string[] {
  const segments = m.value.split('/').slice(1);
  // An exact path is enclosed by its own value as a prefix too; a prefix only by shorter ones;
  // a pattern through its literal segments before the first "*".
  const usable = m.kind === 'exact' ? segments.length : m.kind === 'prefix' ? segments.length - 1 : segments.indexOf('*');
  const out: string[] = [];
  for (let k = usable; k >= 1; k--) out.push('/' + segments.slice(0, k).join('/'));
  if (m.value !== '') out.push('');
  return out;
}

/** Whether the pattern split into `qs` matches every path of `n` (an exact path, or a narrower pattern). */
function patternEncloses(qs: readonly string[], n: { m: RouteMatch; segments: readonly string[] }): boolean {
  if (n.m.kind !== 'exact' && n.m.kind !== 'pattern') return false;
  const vs = n.segments;
  if (qs.length !== vs.length) return false;
  let narrower = false;
  for (let i = 1; i < qs.length; i++) {
    if (qs[i] === '*') {
      if (vs[i] === '') return false;
      if (vs[i] !== '*') narrower = true;
    } else if (qs[i] !== vs[i]) return false;
  }
  return narrower;
}

const SPIFFE_NS = /^spiffe:\/\/([^/]+)\/ns\/([^/]+)\/sa\/[^/]+$/;
const SPIFFE_TD = /^spiffe:\/\/([^/]+)/;

/**
 * Whether callers `s` let in everyone callers `t` let in. A namespace caller without a trust
 * domain is taken in cluster.local (the mesh's own may differ: this only decides a warning).
 */
function callersCover(s: readonly Caller[], t: readonly Caller[]): boolean {
  return t.every((tc) => s.some((sc) => callerCovers(sc, tc)));
}

function callerCovers(s: Caller, t: Caller): boolean {
  if ('anyAuthenticated' in s) return !('unauthenticated' in t);
  if ('unauthenticated' in s) return 'unauthenticated' in t;
  if ('unauthenticated' in t || 'anyAuthenticated' in t) return false;
  const tTd = 'spiffeId' in t ? SPIFFE_TD.exec(t.spiffeId)?.[1] : 'namespace' in t ? (t.trustDomain ?? DEFAULT_TRUST_DOMAIN) : t.trustDomain;
  if ('namespace' in s) {
    if (tTd !== (s.trustDomain ?? DEFAULT_TRUST_DOMAIN)) return false;
    if ('namespace' in t) return t.namespace === s.namespace;
    return 'spiffeId' in t && SPIFFE_NS.exec(t.spiffeId)?.[2] === s.namespace;
  }
  if ('trustDomain' in s) return tTd === s.trustDomain;
  return 'spiffeId' in t && t.spiffeId === s.spiffeId;
}

/** spec.servers[0].routes[2] */
export function formatPath(at: readonly (string | number)[]): string {
  let s = '';
  for (const p of at) s += typeof p === 'number' ? `[${p}]` : s === '' ? p : `.${p}`;
  return s;
}
