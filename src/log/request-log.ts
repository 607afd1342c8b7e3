import type { Logger } from 'pino';
import type { Direction } from '../metrics/label-values.ts';

export interface DenialFacts {
  direction: Direction;
  /** The verified caller SPIFFE ID; null for a plaintext caller. */
  caller: string | null;
  /** The route that denied; null when a default denied. */
  route: string | null;
  reason: string;
  method?: string;
  /** The normalized path, without the query string (queries may carry secrets). */
  path?: string;
  port?: number;
}

export interface AccessFacts {
  direction: Direction;
  peer: string | null;
  route: string | null;
  method: string;
  /** Normalized path, no query string. */
  path: string;
  status: number;
  grpcStatus?: number | null;
  authz: string;
  durationSeconds: number;
  requestBytes: number;
  responseBytes: number;
}

/**
 * The per-request log lines of the sidecar. Every denial is logged (warn) with caller, route
 * and reason — the question an SRE asks first after a 403. The access log (one info line per
 * request) is off by default: at thousands of requests per second it costs more than the
 * proxying itself, and the metrics already count every request.
 */
export class RequestLog {
  readonly #logger: Logger;
  readonly accessLogEnabled: boolean;

  constructor(logger: Logger, opts: { accessLog?: boolean } = {}) {
    this.#logger = logger;
    this.accessLogEnabled = opts.accessLog ?? false;
  }

  denied(f: DenialFacts): void {
    this.#logger.warn(
      { event: 'denied', direction: f.direction, caller: f.caller ?? 'unauthenticated', route: f.route, reason: f.reason, method: f.method, path: f.path, port: f.port },
      'request denied by policy',
    );
  }

  access(f: AccessFacts): void {
    if (!this.accessLogEnabled) return;
    this.#logger.info(
      {
        event: 'access',
        direction: f.direction,
        peer: f.peer ?? 'unauthenticated',
        route: f.route,
        method: f.method,
        path: f.path,
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
}
