import { MeshletError } from '../../common/errors/meshlet-error.ts';

/**
 * Timeouts and limits shared by the inbound and outbound proxies. DEFAULT_PROXY_SETTINGS is the
 * one place their defaults are written: the sidecar's MESHLET_* variables take theirs from it
 * (src/data-plane/sidecar/sidecar-env.ts). Documented in docs/proxy.md; `resolveProxySettings` validates
 * every field at once and freezes the result.
 */
export interface ProxyTimeouts {
  /** TCP connect to the next hop (peer sidecar, app, plaintext destination). */
  readonly connectMs: number;
  /** mTLS handshake, both as server (inbound listener) and as client (towards a peer sidecar). */
  readonly tlsHandshakeMs: number;
  /** From connection/last response until the whole request head has arrived (slowloris guard). */
  readonly requestHeadersMs: number;
  /** An idle keep-alive connection is closed after this long, on both the listening and pooled sides. */
  readonly idleMs: number;
  /** Graceful drain: in-flight requests get this long to finish, then connections are closed. */
  readonly drainMs: number;
  /**
   * Longest wait for a pooled connection when every one of limits.maxConnectionsPerUpstream is
   * busy; then 503 MESHLET_UPSTREAM_QUEUE_TIMEOUT (fail fast instead of piling up behind a
   * saturated next hop).
   */
  readonly queueWaitMs: number;
  /**
   * An exchange or stream on which no byte moved either way for this long is cancelled: 408
   * MESHLET_REQUEST_TIMEOUT when the proxy was waiting on the client, 504
   * MESHLET_UPSTREAM_TIMEOUT when it was waiting on the next hop, a cut connection / RST_STREAM
   * once the response head went out. Active streams (gRPC streaming included) are never cut.
   */
  readonly streamIdleMs: number;
  /**
   * Transparent outbound interception: how long the first bytes of a redirected connection are
   * awaited to tell HTTP, HTTP/2, TLS and anything else apart (detect/first-bytes.ts). Clients
   * of those send at once; a connection silent this long is a server-speaks-first protocol and
   * is passed through as opaque TCP (known server-first ports skip the wait).
   */
  readonly protocolDetectMs: number;
}

export interface ProxyLimits {
  /** Largest request head accepted (request line + headers), bytes. Larger -> 431. */
  readonly maxHeaderBytes: number;
  /** Most header fields accepted in a request. More -> 431. */
  readonly maxHeaderCount: number;
  /** Pooled connections per next hop (peer sidecar or app port). */
  readonly maxConnectionsPerUpstream: number;
  /** Requests waiting for a pooled connection, per next hop; more -> 503 MESHLET_UPSTREAM_BUSY. */
  readonly maxPendingPerUpstream: number;
  /**
   * Inbound fairness: upstream requests (HTTP/1.1 exchanges waiting or running, HTTP/2 streams)
   * one caller — one SPIFFE identity, every replica of a ServiceAccount together; plaintext
   * callers of a PERMISSIVE port count as one — may have in flight to one app port. More -> 503
   * MESHLET_CALLER_LIMIT. Default: half of maxConnectionsPerUpstream, so one caller always leaves
   * the other half of the app's connections to everyone else.
   */
  readonly maxInFlightPerCaller: number;
  /** SETTINGS_MAX_CONCURRENT_STREAMS of every HTTP/2 session the sidecar serves. */
  readonly h2MaxConcurrentStreams: number;
  /**
   * HTTP/2 rapid reset (CVE-2023-44487): a session whose streams end before their response head
   * (reset by the client, or by the server on a malformed frame) gets GOAWAY ENHANCE_YOUR_CALM
   * once it has had this many such streams AND they are at least half of its ended streams.
   */
  readonly h2MaxPrematureResets: number;
}

export interface ProxySettings {
  readonly timeouts: ProxyTimeouts;
  readonly limits: ProxyLimits;
}

export const DEFAULT_PROXY_SETTINGS: ProxySettings = Object.freeze({
  timeouts: Object.freeze({
    connectMs: 5_000,
    tlsHandshakeMs: 10_000,
    requestHeadersMs: 30_000,
    // Below node:http's and most app servers' own 5 s keep-alive timeout would race the app
    // closing a pooled connection as we reuse it; the pool retries such a bodiless request
    // once, and node's agent honours the app's `Keep-Alive: timeout=` hint.
    idleMs: 60_000,
    // The documented MESHLET_DRAIN_TIMEOUT default (README); inside Kubernetes' 30 s grace period.
    drainMs: 20_000,
    // Linkerd's inbound fail-fast timeout (LINKERD2_PROXY_INBOUND_HTTP_FAILFAST_TIMEOUT, 1 s).
    queueWaitMs: 1_000,
    // Envoy's stream_idle_timeout default (5 min).
    streamIdleMs: 300_000,
    // Clients that speak first do so within the first round trip; a server-first protocol on a
    // port not known to be one pays this once per connection (Linkerd waits 10 s).
    protocolDetectMs: 1_000,
  }),
  limits: Object.freeze({
    maxHeaderBytes: 16 * 1024,
    maxHeaderCount: 100,
    maxConnectionsPerUpstream: 256,
    // Envoy's circuit-breaker default max_pending_requests.
    maxPendingPerUpstream: 1024,
    // Half of maxConnectionsPerUpstream (recomputed from it when only that one is given).
    maxInFlightPerCaller: 128,
    // Go's net/http2 server default (250); RFC 9113 §6.5.2 recommends no less than 100.
    h2MaxConcurrentStreams: 250,
    // Envoy's premature-reset rule (half of the streams, counted from a floor), with a lower floor.
    h2MaxPrematureResets: 100,
  }),
});

export class ProxyConfigError extends MeshletError {
  readonly problems: readonly string[];
  constructor(problems: string[]) {
    super('MESHLET_PROXY_CONFIG_INVALID', `invalid proxy settings: ${problems.join('; ')}`);
    this.problems = problems;
  }
}

export interface ProxySettingsInput {
  timeouts?: Partial<ProxyTimeouts>;
  limits?: Partial<ProxyLimits>;
}

/** Fills defaults, checks every field (all problems reported at once), freezes. */
export function resolveProxySettings(input: ProxySettingsInput = {}): ProxySettings {
  const problems: string[] = [];
  const timeouts = pick('timeouts', DEFAULT_PROXY_SETTINGS.timeouts, input.timeouts, problems);
  const limits = pick('limits', DEFAULT_PROXY_SETTINGS.limits, input.limits, problems);
  if (input.limits?.maxInFlightPerCaller === undefined) (limits as { maxInFlightPerCaller: number }).maxInFlightPerCaller = callerShare(limits.maxConnectionsPerUpstream);
  if (problems.length > 0) throw new ProxyConfigError(problems);
  return Object.freeze({ timeouts: Object.freeze(timeouts), limits: Object.freeze(limits) });
}

/** The default per-caller share of one next hop: half its connections (at least one). */
export function callerShare(maxConnectionsPerUpstream: number): number {
  return Math.max(1, Math.ceil(maxConnectionsPerUpstream / 2));
}

function pick<T extends object>(section: string, defaults: T, given: Partial<T> | undefined, problems: string[]): T {
  const out = { ...defaults };
  for (const key of Object.keys(given ?? {}) as (keyof T & string)[]) {
    const value = given![key];
    if (!(key in defaults)) {
      problems.push(`${section}.${key} is not a known setting`);
    } else if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
      problems.push(`${section}.${key} must be a positive integer, got ${JSON.stringify(value)}`);
    } else {
      (out as Record<string, number>)[key] = value;
    }
  }
  return out;
}
