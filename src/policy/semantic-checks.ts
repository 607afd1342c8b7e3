import { parseSpiffeId, validateTrustDomain } from '../identity/spiffe-id.ts';
import { normalizePath } from './normalize-path.ts';
import { routeMatchOf } from './route-match.ts';
import type { Caller, Policy, Route, Server } from './types.ts';

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
  });
  return out;
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

/**
 * Two routes of one server that match the same requests (same tier and value, overlapping
 * ports and methods) would need a tie-break; meshlet refuses the policy instead, so the
 * route that decides is never an accident of declaration order.
 */
function checkAmbiguousRoutes(server: Server, sAt: Finding['at'], ports: Map<number, string>, err: Report, warn: Report): void {
  const seen: { route: Route; index: number; key: string }[] = [];
  server.routes.forEach((route, r) => {
    if (route.path && Object.keys(route.path).length !== 1) return;
    const m = routeMatchOf(route);
    const key = `${m.kind} ${m.value}`;
    for (const other of seen) {
      if (other.key !== key) continue;
      if (route.port !== undefined && other.route.port !== undefined && route.port !== other.route.port) continue;
      const overlap = !route.methods || !other.route.methods || route.methods.some((x) => other.route.methods!.includes(x));
      if (!overlap) continue;
      // Scoped vs unscoped on the same match: the port-scoped one is more specific, no tie.
      if ((route.port === undefined) !== (other.route.port === undefined)) continue;
      // Method-specific vs any-method on the same match: method-specific wins, no tie.
      if (!route.methods !== !other.route.methods) continue;
      err('POLICY_AMBIGUOUS_ROUTE', [...sAt, 'routes', r], `route "${route.name}" matches the same requests as route "${other.route.name}" (${key === 'port-wide ' ? 'port-wide' : key}); make them distinct or merge their callers`);
    }
    seen.push({ route, index: r, key });
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

/** spec.servers[0].routes[2] */
export function formatPath(at: readonly (string | number)[]): string {
  let s = '';
  for (const p of at) s += typeof p === 'number' ? `[${p}]` : s === '' ? p : `.${p}`;
  return s;
}
