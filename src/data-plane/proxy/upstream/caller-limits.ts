import type { ServerHttp2Stream } from 'node:http2';
import { ProxyError } from '../http/errors.ts';
import type { NextHop } from '../http/forward-request.ts';
import type { Http1Pool } from './http1-pool.ts';
import type { InFlightSlot, Upstream, UpstreamHandler, UpstreamRequest } from './upstream.ts';

/**
 * Inbound fairness for one app port (issue 11 item 5: "one caller starves everyone"): a caller
 * — one verified SPIFFE identity, so every replica of a ServiceAccount together; the plaintext
 * callers of a PERMISSIVE port together as `unauthenticated` — may have at most
 * limits.maxInFlightPerCaller upstream requests in flight to the app. The excess is refused at
 * once with 503 MESHLET_CALLER_LIMIT (gRPC RESOURCE_EXHAUSTED), so whatever one caller does, the
 * app keeps connections for everyone else (by default half of limits.maxConnectionsPerUpstream).
 *
 * In flight means from admission until the app is done with it, not until the caller is: an
 * HTTP/1.1 exchange holds its share while it waits for a connection, while it runs, and while
 * the pool drains the response of a cancelled request (upstream.ts InFlightSlot), so
 * cancelling (HTTP/2 rapid reset) never buys a caller more than its share. An HTTP/2 stream
 * forwarded on the app's HTTP/2 session holds it until the stream closes (which cancels the
 * app's stream too).
 *
 * Per request: one Map lookup and an integer increment/decrement; the per-caller object (and
 * its NextHop) is made once per caller and kept.
 */
export class CallerLimits {
  readonly #pool: Http1Pool;
  readonly #label: string;
  readonly #max: number;
  readonly #callers = new Map<string, CallerShare>();

  constructor(pool: Http1Pool, label: string, maxInFlightPerCaller: number) {
    this.#pool = pool;
    this.#label = label;
    this.#max = maxInFlightPerCaller;
  }

  /** The next hop as this caller uses it (the app port's pool, behind the caller's share). */
  hop(peer: string | null): NextHop {
    return this.#share(peer).hop;
  }

  /**
   * Admits one HTTP/2 stream forwarded over an HTTP/2 session, counted until the stream
   * closes; the refusal to send when the caller is at its limit.
   */
  admitStream(peer: string | null, stream: ServerHttp2Stream): ProxyError | null {
    const share = this.#share(peer);
    if (share.inFlight >= this.#max) return share.refusal();
    share.inFlight++;
    // 'close' fires once; `on` spares the wrapper `once` allocates.
    stream.on('close', share.release);
    return null;
  }

  /** Requests in flight for this caller (tests, diagnostics). */
  inFlight(peer: string | null): number {
    return this.#callers.get(peer ?? '')?.inFlight ?? 0;
  }

  #share(peer: string | null): CallerShare {
    const key = peer ?? '';
    let share = this.#callers.get(key);
    if (share === undefined) {
      // Bounded by the identities that can connect; callers with nothing in flight are dropped
      // only when the map grows large, so a steady caller never allocates per request.
      if (this.#callers.size >= 4096) for (const [k, s] of this.#callers) if (s.inFlight === 0) this.#callers.delete(k);
      share = new CallerShare(this.#pool, this.#label, key, this.#max);
      this.#callers.set(key, share);
    }
    return share;
  }
}

class CallerShare implements Upstream, InFlightSlot {
  readonly hop: NextHop;
  readonly #pool: Http1Pool;
  readonly #label: string;
  readonly #caller: string;
  readonly #max: number;
  inFlight = 0;

  constructor(pool: Http1Pool, label: string, caller: string, max: number) {
    this.#pool = pool;
    this.#label = label;
    this.#caller = caller;
    this.#max = max;
    this.hop = { pool: this, label };
  }

  dispatch(request: UpstreamRequest, handler: UpstreamHandler): boolean {
    if (this.inFlight >= this.#max) {
      handler.onError(this.refusal());
      return false;
    }
    this.inFlight++;
    return this.#pool.dispatch(request, handler, this);
  }

  readonly release = (): void => {
    this.inFlight--;
  };

  refusal(): ProxyError {
    const who = this.#caller === '' ? 'unauthenticated callers' : this.#caller;
    return new ProxyError('MESHLET_CALLER_LIMIT', `${who} already has ${this.#max} requests in flight to ${this.#label} (limits.maxInFlightPerCaller)`);
  }

  /** The pool belongs to the listener; it is destroyed there. */
  destroy(): Promise<void> {
    return Promise.resolve();
  }
}
