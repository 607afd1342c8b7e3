import type { Logger } from 'pino';
import type { Direction } from '../metrics/label-values.ts';
import type { ProxyObserver } from '../proxy/proxy-observer.ts';
import { boundField, LogLimiter, type LogLimits, type SuppressionSummary } from '../../common/log/log-limiter.ts';

export interface DenialFacts {
  direction: Direction;
  /** The verified caller SPIFFE ID; null for a plaintext caller. */
  caller: string | null;
  /** The route that denied; null when a default denied. */
  route: string | null;
  reason: string;
  /** The decision's stable code (`caller-not-allowed`, `no-route-matched`, …). */
  code?: string;
  method?: string;
  /** The normalized path, without the query string (queries may carry secrets). */
  path?: string;
  port?: number;
}

/** Which admin endpoint refused a caller, and why (also the labels of meshlet_admin_refusals_total). */
export type AdminEndpoint = 'connections' | 'shutdown' | 'app-health' | 'other';
export type AdminRefusalReason = 'not_loopback' | 'disabled' | 'method_not_allowed' | 'unknown_probe' | 'not_found';

export interface AdminRefusalFacts {
  endpoint: AdminEndpoint;
  reason: AdminRefusalReason;
  method: string;
  /** The request path, without the query string. */
  path: string;
  remoteAddress: string;
}

export interface AccessFacts {
  direction: Direction;
  /** null: plaintext; undefined: unknown (an outbound request that never reached a next hop). */
  peer: string | null | undefined;
  route: string | null;
  method: string;
  /** Normalized path, no query string; absent where the proxy does not report it (the observer). */
  path?: string;
  status: number;
  grpcStatus?: number | null;
  authz: string;
  durationSeconds: number;
  requestBytes: number;
  responseBytes: number;
}

export interface RequestLogOptions {
  accessLog?: boolean;
  /** Rate limits of the lines a remote caller can trigger; DEFAULT_LOG_LIMITS when absent. */
  limits?: Partial<LogLimits>;
  /** Tests: a clock (ms, monotonic) and the summary interval. */
  now?: () => number;
  summaryIntervalMs?: number;
}

/**
 * The log lines of the sidecar that a remote caller can make it write: every such line is
 * written here and nowhere else, so the one LogLimiter below bounds them all.
 *
 * - Denials (warn) with caller, route and reason — the question an SRE asks first after a
 *   403 — rate limited per (event, reason), with a `log_suppressed` line saying how many were
 *   left out. The metrics (meshlet_authz_decisions_total, meshlet_proxy_refusals_total) still
 *   count every one. With the decision log on (MESHLET_DECISION_LOG, the default `deny`) a
 *   denial is its `authz_decision` line instead (decision-log.ts), written through this same
 *   `limiter`; `denied()` writes the short line when the decision log is off.
 * - Admin refusals (warn): /connections or /shutdown from the network, unknown probe names.
 * - The access log (one info line per request) is off by default: at thousands of requests
 *   per second it costs more than the proxying itself, and the metrics already count every
 *   request. It is not rate limited (turning it on asks for every line) but its fields are
 *   bounded like the others.
 *
 * Every string a caller influences (path, method, caller, route, reason) is cut to
 * MAX_FIELD_BYTES with a `…[truncated N bytes]` marker. pino writes JSON, so a newline or a
 * quote in a path cannot forge a line (log injection); the limit bounds the size.
 */
export class RequestLog {
  readonly #logger: Logger;
  readonly accessLogEnabled: boolean;
  readonly limiter: LogLimiter;

  constructor(logger: Logger, opts: RequestLogOptions = {}) {
    this.#logger = logger;
    this.accessLogEnabled = opts.accessLog ?? false;
    this.limiter = new LogLimiter({
      ...opts.limits,
      ...(opts.now ? { now: opts.now } : {}),
      ...(opts.summaryIntervalMs !== undefined ? { summaryIntervalMs: opts.summaryIntervalMs } : {}),
      onSuppressed: (s) => this.#suppressed(s),
    });
  }

  denied(f: DenialFacts): void {
    if (!this.limiter.allow('denied', f.reason)) return;
    this.#logger.warn(
      {
        event: 'denied',
        direction: f.direction,
        caller: f.caller === null ? 'unauthenticated' : boundField(f.caller),
        route: boundField(f.route),
        code: f.code,
        reason: boundField(f.reason),
        method: boundField(f.method),
        path: boundField(f.path),
        port: f.port,
      },
      'request denied by policy',
    );
  }

  adminRefused(f: AdminRefusalFacts): void {
    if (!this.limiter.allow('admin_refused', f.reason)) return;
    this.#logger.warn(
      { event: 'admin_refused', endpoint: f.endpoint, reason: f.reason, method: boundField(f.method), path: boundField(f.path), remoteAddress: f.remoteAddress },
      'admin request refused',
    );
  }

  access(f: AccessFacts): void {
    if (!this.accessLogEnabled) return;
    this.#logger.info(
      {
        event: 'access',
        direction: f.direction,
        peer: f.peer === null ? 'unauthenticated' : f.peer === undefined ? 'unknown' : boundField(f.peer),
        route: boundField(f.route),
        method: boundField(f.method),
        path: boundField(f.path),
        status: f.status,
        grpcStatus: f.grpcStatus ?? undefined,
        authz: f.authz,
        durationMs: Math.round(f.durationSeconds * 1e6) / 1e3,
        requestBytes: f.requestBytes,
        responseBytes: f.responseBytes,
      },
      'request',
    );
  }

  /**
   * `observer` plus an access line per finished request when MESHLET_ACCESS_LOG=true; the
   * observer itself, untouched, otherwise (the hot path gains nothing when the log is off).
   */
  withAccessLog(observer: ProxyObserver): ProxyObserver {
    if (!this.accessLogEnabled) return observer;
    const finished = observer.requestFinished;
    return {
      ...observer,
      requestFinished: (direction, peer, route, method, status, grpcStatus, authz, durationSeconds, requestBytes, responseBytes) => {
        finished?.(direction, peer, route, method, status, grpcStatus, authz, durationSeconds, requestBytes, responseBytes);
        this.access({ direction, peer, route: route ?? null, method, status, grpcStatus, authz, durationSeconds, requestBytes, responseBytes });
      },
    };
  }

  /** Writes the pending suppression summary (the sidecar calls it when it stops). */
  close(): void {
    this.limiter.close();
  }

  #suppressed(s: SuppressionSummary): void {
    this.#logger.warn(
      { event: 'log_suppressed', suppressed: s.suppressed, byEvent: s.byEvent, periodMs: s.periodMs, linesPerSecond: this.limiter.limits.linesPerSecond, burst: this.limiter.limits.burst },
      `${s.suppressed} log line${s.suppressed === 1 ? '' : 's'} suppressed by the log rate limit; metrics count every event`,
    );
  }
}
