import type { PathMatching, Route } from './types.ts';

/**
 * What a route matches on the path, reduced to one of four tiers. gRPC matchers become HTTP/2
 * paths (`/pkg.Service/Method` exact, `/pkg.Service` as a segment prefix), so HTTP and gRPC
 * routes share one table and one precedence order.
 * Prefixes are segment-wise (Gateway API PathPrefix): `/api` matches `/api` and `/api/x` but
 * not `/apix`; a trailing "/" in the prefix is ignored and the root prefix is stored as "".
 */
export type RouteMatch =
  | { kind: 'exact'; value: string }
  | { kind: 'pattern'; value: string }
  | { kind: 'prefix'; value: string }
  | { kind: 'port-wide'; value: '' };

/**
 * The match of a route, as the server's path matching mode compares it: in
 * `case-insensitive-trailing-slash` mode the value is folded exactly as requests are (foldPath).
 */
export function routeMatchOf(route: Route, pathMatching: PathMatching = 'exact'): RouteMatch {
  const m = literalMatchOf(route);
  if (pathMatching === 'exact' || m.kind === 'port-wide') return m;
  return { kind: m.kind, value: foldPath(m.value) };
}

/**
 * A path as `case-insensitive-trailing-slash` compares it: ASCII letters lowercased, one
 * trailing "/" dropped ("/" itself stays). Normalized paths are ASCII (normalizePath refuses
 * raw non-ASCII and keeps escapes encoded), so toLowerCase only touches A-Z. Allocates only
 * when the path changes.
 */
export function foldPath(path: string): string {
  let len = path.length;
  if (len > 1 && path.charCodeAt(len - 1) === 0x2f) len--;
  for (let i = 0; i < len; i++) {
    const c = path.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) return (len === path.length ? path : path.slice(0, len)).toLowerCase();
  }
  return len === path.length ? path : path.slice(0, len);
}

function literalMatchOf(route: Route): RouteMatch {
  if (route.grpc) {
    return route.grpc.method
      ? { kind: 'exact', value: `/${route.grpc.service}/${route.grpc.method}` }
      : { kind: 'prefix', value: `/${route.grpc.service}` };
  }
  const p = route.path;
  if (p && 'exact' in p) return { kind: 'exact', value: p.exact };
  if (p && 'pattern' in p) return { kind: 'pattern', value: p.pattern };
  if (p && 'prefix' in p) return { kind: 'prefix', value: p.prefix.replace(/\/+$/, '') };
  return { kind: 'port-wide', value: '' };
}

/** A human description, used by explain and by error messages. */
export function describeRouteMatch(route: Route): string {
  const m = routeMatchOf(route);
  const methods = route.methods ? ` ${route.methods.join(',')}` : ' any method';
  if (route.grpc) return `gRPC ${route.grpc.service}/${route.grpc.method ?? '*'}`;
  if (m.kind === 'port-wide') return `every request on the port (${methods.trim()})`;
  if (m.kind === 'prefix') return `path prefix ${m.value === '' ? '/' : m.value}${methods}`;
  return `${m.kind} path ${m.value}${methods}`;
}
