import type { Socket } from 'node:net';
import { collectDefaultMetrics, Registry } from 'prom-client';
import type { SvidSource } from '../identity/svid.ts';
import { PolicyMetrics } from '../policy/metrics.ts';
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
    if (opts.processMetrics ?? true) collectDefaultMetrics({ register: registry });
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
    this.authz.decided(caller, outcome.route, result);
    return result;
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
