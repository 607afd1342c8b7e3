import type { Readable } from 'node:stream';
import type { TrackedConnection } from '../connection-registry.ts';
import { ProxyError } from '../http/errors.ts';

/**
 * meshlet's own upstream interface: what the forwarding code (http/forward-request.ts,
 * h2/forward-stream-to-http1.ts) needs of an HTTP/1.1 next hop, and what the pool
 * (http1-pool.ts) and a caller's share of it (caller-limits.ts) provide.
 *
 * The shape is a dispatch() with a plain handler object — no ClientRequest, no response stream
 * object, no promise per request: measured on the hop bench (docs/proxy.md "Measurements"), the
 * per-request cost of the client leg was the largest part of a sidecar's CPU. The shape first
 * came from undici's dispatch() contract, but these are meshlet's types, not undici's: the data
 * plane does not load undici at all (loading it cost a sidecar ~30 MB of heap for nothing,
 * measured), and its error codes do not reach the forwarding code.
 *
 * Every failure reaches the handler ONCE, through onError, already named as the ProxyError the
 * caller will see — by the part that saw it happen: connecting (next-hop-connect.ts), the pool,
 * the response parser, the request body. The forwarding code only decides whether to retry
 * (ClosedBeforeResponse) and otherwise answers with it; it never classifies a raw error.
 */

/** One request to send to the next hop. */
export interface UpstreamRequest {
  readonly method: string;
  /** The request target as sent (origin-form: path and query). */
  readonly path: string;
  /**
   * Header fields, flat: [name, value, name, value, …], written as given (they come from
   * node's strict parsers through forwardHeaders()/http1ForwardHeaders(): no CR, LF or NUL).
   * A Content-Length among them frames the body; without one, a body is sent chunked.
   */
  readonly headers: readonly string[];
  /** The request body (de-framed bytes), or null for none. */
  readonly body: Readable | null;
}

/**
 * Hears one exchange. Calls come in this order: onConnect once (when a connection takes the
 * request; before that, nothing was sent), then onHeaders (1xx heads first, then the final
 * one), onData per body chunk and onComplete — or onError at any point, after which nothing
 * more is heard. A handler that calls `abort` gets onError too.
 */
export interface UpstreamHandler {
  /**
   * The exchange has a connection. `abort` cancels it (the caller went away; onError follows,
   * with a failure no one is answered with); it may be called right here, and then nothing is
   * written. `upstreamConnection` is the /connections entry of
   * the connection carrying the request (outbound, its verified server identity labels the
   * request).
   */
  onConnect(abort: () => void, upstreamConnection?: TrackedConnection): void;
  /** A response head; false asks the pool to stop reading until `resume()` (backpressure). */
  onHeaders(status: number, rawHeaders: Buffer[], resume: () => void): boolean;
  /** A response body chunk; false: as for onHeaders. */
  onData(chunk: Buffer): boolean;
  /** The response is complete; `trailers` flat [name, value, …], null when there were none. */
  onComplete(trailers: string[] | null): void;
  /** The exchange failed: `err` is what the caller is to see (or, once the head went out, why it is cut). */
  onError(err: ProxyError): void;
}

/** A next hop the forwarding code sends requests to (a pool, or a caller's share of one). */
export interface Upstream {
  /** Starts (or queues) the exchange; false when it was refused at once (the handler heard why). */
  dispatch(request: UpstreamRequest, handler: UpstreamHandler): boolean;
  destroy(): Promise<void>;
}

/**
 * Held by one exchange from its admission until the next hop is done with it (response read to
 * its end — or dropped —, connection closed, or the request refused/dropped before it was
 * written); released exactly once. Inbound fairness counts in-flight requests per caller with it
 * (caller-limits.ts): a caller who cancels does not get its share back while the app is still
 * busy with what it asked.
 */
export interface InFlightSlot {
  release(): void;
}

/**
 * 502 MESHLET_UPSTREAM_RESET for a connection that closed (or failed) before one byte of a
 * response arrived: the next hop did nothing with the request that a second attempt could
 * repeat — typically it closed its idle keep-alive connection as the request was written. The
 * one failure forward-request.ts retries (once, and only a bodiless idempotent request); to
 * everyone else it is the plain ProxyError it extends.
 */
export class ClosedBeforeResponse extends ProxyError {
  constructor(message: string, options?: ErrorOptions) {
    super('MESHLET_UPSTREAM_RESET', message, options);
  }
}
