import type { Socket } from 'node:net';
import { collectDefaultMetrics, Registry } from 'prom-client';
import type { SvidSource } from '../identity/svid.ts';
import { PolicyMetrics } from '../policy/metrics.ts';
import type { CompiledPolicy } from '../policy/compile.ts';
import type { TrackedConnection } from '../proxy/connection-registry.ts';
import type { ProxyObserver } from '../proxy/proxy-observer.ts';
import { AuthzMetrics, type AuthzDecisionResult } from './authz-metrics.ts';
import { ConnectionMetrics } from './connection-metrics.ts';
import { IdentityMetrics } from './identity-metrics.ts';
import { ListenerMetrics } from './listener-metrics.ts';
import { DEFAULT_LABEL_CAP, type Direction } from './label-values.ts';
import { RefusalMetrics } from './refusal-metrics.ts';
import { RequestMetrics } from './request-metrics.ts';
import { TlsMetrics } from './tls-metrics.ts';

export interface SidecarMetricsOptions {
  /** Default: a new Registry (never the global one: a test process runs several sidecars). */
  registry?: Registry;
  /** Distinct peer identities per family before new ones become "other" (default 1000). */
  peerCap?: number;
  /** Distinct route names per family before new ones become "other" (default 1000). */
  routeCap?: number;
  /** prom-client's process_* / nodejs_* metrics (CPU, memory, event loop lag). Default true. */
  processMetrics?: boolean;
}

/**
 * prom-client's default metrics that are gauges named `_total`, which Prometheus' naming rules
 * reserve for counters (`promtool check metrics` fails on them). Each is the sum of the
 * by-type gauge next to it (nodejs_active_handles{type}, …), so nothing is lost.
 */
export const DROPPED_DEFAULT_METRICS: readonly string[] = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/**
 * The outcomes a policy route's request series are made for when the policy loads (status,
 * grpc-status): success, and what a failing app or next hop looks like — 5xx for HTTP; for
 * gRPC (HTTP 200, trailers) DEADLINE_EXCEEDED and UNAVAILABLE, the statuses meshlet itself
 * answers when the app is slow or unreachable.
 */
const PREPARED_HTTP_OUTCOMES: readonly (readonly [number, number | null])[] = [[200, null], [500, null]];
const PREPARED_GRPC_OUTCOMES: readonly (readonly [number, number | null])[] = [[200, 0], [200, 4], [200, 14]];
/** Methods a route's series are made for when it lists none (a gRPC route: POST). */
const PREPARED_ANY_METHODS: readonly string[] = ['GET', 'POST'];

/** What the policy decided for one request, as the proxy's authorizer reports it. */
export interface DecisionOutcome {
  readonly decision: 'allow' | 'deny';
  readonly route: string | null;
  /** An allow that enforcement would have denied (audit mode). */
  readonly wouldDeny?: boolean;
}

/**
 * Every metric family of one sidecar on one Registry, and the handful of calls the sidecar
 * makes: per request (requestSeries + observeRequest), per decision, per connection, the
 * ProxyObserver hooks for refusals and handshake failures, and the identity source to follow.
 */
export class SidecarMetrics {
  readonly registry: Registry;
  readonly requests: RequestMetrics;
  readonly connections: ConnectionMetrics;
  readonly authz: AuthzMetrics;
  readonly tls: TlsMetrics;
  readonly refusals: RefusalMetrics;
  readonly identity: IdentityMetrics;
  readonly policy: PolicyMetrics;
  /** The connection guards' refusals, caps and open connections: hand to each ConnectionGuard as `observer`. */
  readonly listeners: ListenerMetrics;
  /** Hand to InboundProxy / OutboundProxy as `observer`. */
  readonly observer: Required<ProxyObserver>;

  constructor(opts: SidecarMetricsOptions = {}) {
    const registry = (this.registry = opts.registry ?? new Registry());
    const peerCap = opts.peerCap ?? DEFAULT_LABEL_CAP;
    const routeCap = opts.routeCap ?? DEFAULT_LABEL_CAP;
    this.requests = new RequestMetrics(registry, { peerCap, routeCap });
    this.connections = new ConnectionMetrics(registry, { peerCap });
    this.authz = new AuthzMetrics(registry, { callerCap: peerCap, routeCap });
    this.tls = new TlsMetrics(registry);
    this.refusals = new RefusalMetrics(registry);
    this.identity = new IdentityMetrics(registry);
    this.policy = new PolicyMetrics(registry);
    this.listeners = new ListenerMetrics(registry);
    if (opts.processMetrics ?? true) {
      collectDefaultMetrics({ register: registry });
      for (const name of DROPPED_DEFAULT_METRICS) registry.removeSingleMetric(name);
    }
    this.observer = {
      requestFinished: (direction, peer, route, method, status, grpcStatus, authz, seconds, reqBytes, resBytes) =>
        this.requests.record(direction, peer, route, method, status, grpcStatus, authz, seconds, reqBytes, resBytes),
      refused: (direction, code) => this.refusals.refused(direction, code),
      handshakeFailed: (direction, err) => {
        this.tls.handshakeFailed(direction, err);
      },
    };
  }

  /** Counts an authorization decision; returns the request's `authz` label value. */
  decided(caller: string | null, outcome: DecisionOutcome): AuthzDecisionResult {
    const result: AuthzDecisionResult = outcome.decision === 'deny' ? 'deny' : outcome.wouldDeny === true ? 'audit_would_deny' : 'allow';
    const routeLabel = this.authz.decided(caller, outcome.route, result);
    if (result === 'audit_would_deny') this.policy.recordWouldDeny(routeLabel);
    return result;
  }

  /**
   * Makes a policy's series now, at 0, so that `rate()` sees a route's first requests and first
   * errors (a series born at 1 shows no increase). Called on every policy that is applied. For
   * each route and each caller it names by SPIFFE ID (and `unauthenticated` when it admits
   * plaintext callers): meshlet_authz_decisions_total (allow, deny, audit_would_deny) and the
   * inbound request series for each method the route lists (GET and POST when none; POST for
   * gRPC) with authz "allow" and the outcomes above; under audit mode (or the audit default),
   * meshlet_policy_audit_would_deny_total per route (and "unmatched"). Callers named by
   * namespace, trust domain or "any authenticated" cannot be listed ahead: their series come
   * with their first request. Opaque TCP routes get decision series only. Bounded by the peer
   * and route caps (made-ahead series never push real traffic into "other"), and no request
   * series with `requestSeries: false` (MESHLET_REQUEST_METRICS=false). Series of
   * routes a later policy drops stay until the sidecar restarts: a counter that disappears and
   * comes back would read as a reset.
   */
  policyApplied(policy: CompiledPolicy, opts: { requestSeries?: boolean } = {}): void {
    const requestSeries = opts.requestSeries ?? true;
    const audit = policy.mode === 'audit' || policy.defaultPolicy === 'audit';
    if (audit && this.authz.routes.tryAdmit('unmatched')) this.policy.wouldDeny.inc({ route: 'unmatched' }, 0);
    for (const route of policy.routes) {
      const { source } = route;
      const name = source.name;
      if (audit && this.authz.routes.tryAdmit(name)) this.policy.wouldDeny.inc({ route: name }, 0);
      const protocol = source.port === undefined ? undefined : policy.ports.get(source.port)?.protocol;
      const grpc = source.grpc !== undefined || protocol === 'grpc';
      const methods = grpc ? ['POST'] : (source.methods ?? PREPARED_ANY_METHODS);
      const outcomes = grpc ? PREPARED_GRPC_OUTCOMES : PREPARED_HTTP_OUTCOMES;
      for (const caller of source.callers) {
        const peer = 'spiffeId' in caller ? caller.spiffeId : 'unauthenticated' in caller ? null : undefined;
        if (peer === undefined) continue;
        this.authz.prepare(peer, name);
        if (protocol === 'tcp' || !requestSeries) continue;
        for (const method of methods) for (const [status, grpcStatus] of outcomes) this.requests.prepare(peer, name, method, status, grpcStatus, 'allow');
      }
    }
  }

  /** Counts a connection until it closes (see ConnectionMetrics.track). */
  trackConnection(direction: Direction, peer: string | null | undefined, tls: string | null, socket: Socket): void {
    this.connections.track(direction, peer, tls, socket);
  }

  /**
   * Counts a connection the proxy tracks, once its peer and TLS version are known (inbound:
   * after the client SVID is verified). A connection without a verified peer is "unknown":
   * the app's side of the sidecar, or an outbound connection before it is routed.
   */
  connectionOpened(conn: TrackedConnection): void {
    this.connections.track(conn.direction, conn.peerIdentity ?? undefined, conn.tlsVersion, conn.socket);
  }

  /** Exports the identity held by `source` (expiry, rotations, failures). Returns detach. */
  followIdentity(source: SvidSource): () => void {
    return this.identity.follow(source);
  }
}
