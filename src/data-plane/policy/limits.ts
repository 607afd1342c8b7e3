import { formatPath, type Finding } from './semantic-checks.ts';

/**
 * The caps on a policy document (docs/policy.md "Limits"). A policy comes from a ConfigMap
 * that any namespace member with `configmaps` write access can change, and every sidecar
 * mounting it parses it, so its cost must be bounded before anything else looks at it:
 * the sidecar's default memory limit is 256 MiB and the policy decision runs on the same
 * event loop as every request.
 *
 * Measured (2-core machine, Node 24): the `yaml` parser takes about 0.5-1 µs and 150-200 B
 * of heap per input byte; a 1,000-route policy (110-230 KB) parses in 130-190 ms and compiles
 * in about 7 ms. The caps keep the worst case of every stage within those figures.
 */
export const POLICY_LIMITS = Object.freeze({
  /**
   * Bytes of one policy document. A ConfigMap holds at most 1 MiB in all; 256 KiB still fits
   * 1,000 routes written in the verbose block style (about 230 B a route).
   */
  maxDocumentBytes: 256 * 1024,
  /**
   * `yaml`'s maxAliasCount: how often one anchor may be expanded, weighted by the aliases
   * nested inside it. Legitimate reuse (one caller list in 100 routes) fits; an alias bomb
   * ("billion laughs") is refused after about 100 expansions instead of growing exponentially.
   */
  maxAliasCount: 100,
  /** Servers of one policy. */
  maxServers: 64,
  /** Routes of one server: what one sidecar compiles (about 7 ms for 1,000). */
  maxRoutesPerServer: 1_000,
  /** Routes of all servers together, after alias expansion: what `check` and /validate walk. */
  maxRoutesPerPolicy: 2_000,
  /** Ports of one server: every port gets its own route table of the server's unscoped routes. */
  maxPortsPerServer: 32,
  /** Callers of one route (exact IDs fold into one Set; use namespace / trustDomain callers for more). */
  maxCallersPerRoute: 128,
  /** Methods of one route. */
  maxMethodsPerRoute: 16,
  /** Clients of one policy (issue 16: the client side), like servers: one per workload of a namespace. */
  maxClients: 64,
  /** Destinations of one client: a linear scan once per destination (the verdict is cached), never per request. */
  maxDestinationsPerClient: 256,
  /** Ports of one client destination. */
  maxPortsPerDestination: 32,
  /** Findings reported for one document; the rest are summarized in one POLICY_TOO_MANY_ERRORS line. */
  maxReportedFindings: 100,
});

/** Findings about counts over the caps, found by reading array lengths only (no deep walk). */
export function checkLimits(value: unknown): Finding[] {
  const out: Finding[] = [];
  const L = POLICY_LIMITS;
  const over = (at: Finding['at'], what: string, n: number, cap: number, per: string): void => {
    out.push({ severity: 'error', code: 'POLICY_LIMIT', message: `${formatPath(at)} has ${n} ${what}; the limit is ${cap} ${what} ${per} (docs/policy.md#limits)`, at });
  };
  checkClientLimits(value, over);
  if (out.length > 0) return out;
  const servers = (value as { spec?: { servers?: unknown } } | null)?.spec?.servers;
  if (!Array.isArray(servers)) return out;
  if (servers.length > L.maxServers) {
    over(['spec', 'servers'], 'servers', servers.length, L.maxServers, 'per policy');
    return out;
  }
  let total = 0;
  for (let s = 0; s < servers.length; s++) {
    const server = servers[s] as { routes?: unknown; ports?: unknown } | null;
    if (typeof server !== 'object' || server === null) continue;
    if (Array.isArray(server.ports) && server.ports.length > L.maxPortsPerServer) {
      over(['spec', 'servers', s, 'ports'], 'ports', server.ports.length, L.maxPortsPerServer, 'per server');
    }
    if (!Array.isArray(server.routes)) continue;
    const routes = server.routes;
    if (routes.length > L.maxRoutesPerServer) {
      over(['spec', 'servers', s, 'routes'], 'routes', routes.length, L.maxRoutesPerServer, 'per server');
      continue;
    }
    total += routes.length;
    if (total > L.maxRoutesPerPolicy) {
      over(['spec', 'servers'], 'routes', total, L.maxRoutesPerPolicy, 'per policy (all servers)');
      return out;
    }
    for (let r = 0; r < routes.length; r++) {
      const route = routes[r] as { callers?: unknown; methods?: unknown } | null;
      if (typeof route !== 'object' || route === null) continue;
      if (Array.isArray(route.callers) && route.callers.length > L.maxCallersPerRoute) {
        over(['spec', 'servers', s, 'routes', r, 'callers'], 'callers', route.callers.length, L.maxCallersPerRoute, 'per route');
      }
      if (Array.isArray(route.methods) && route.methods.length > L.maxMethodsPerRoute) {
        over(['spec', 'servers', s, 'routes', r, 'methods'], 'methods', route.methods.length, L.maxMethodsPerRoute, 'per route');
      }
      if (out.length >= L.maxReportedFindings) return out;
    }
  }
  return out;
}

/** The client side's counts: clients, destinations per client, ports per destination. */
function checkClientLimits(value: unknown, over: (at: Finding['at'], what: string, n: number, cap: number, per: string) => void): void {
  const L = POLICY_LIMITS;
  const clients = (value as { spec?: { clients?: unknown } } | null)?.spec?.clients;
  if (!Array.isArray(clients)) return;
  if (clients.length > L.maxClients) return over(['spec', 'clients'], 'clients', clients.length, L.maxClients, 'per policy');
  for (let c = 0; c < clients.length; c++) {
    const destinations = (clients[c] as { destinations?: unknown } | null)?.destinations;
    if (!Array.isArray(destinations)) continue;
    if (destinations.length > L.maxDestinationsPerClient) {
      over(['spec', 'clients', c, 'destinations'], 'destinations', destinations.length, L.maxDestinationsPerClient, 'per client');
      continue;
    }
    for (let d = 0; d < destinations.length; d++) {
      const ports = (destinations[d] as { ports?: unknown } | null)?.ports;
      if (Array.isArray(ports) && ports.length > L.maxPortsPerDestination) {
        over(['spec', 'clients', c, 'destinations', d, 'ports'], 'ports', ports.length, L.maxPortsPerDestination, 'per destination');
      }
    }
  }
}
