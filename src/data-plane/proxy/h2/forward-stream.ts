import { constants, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { idleTimeout, ProxyError } from '../http/errors.ts';
import type { H2SessionPool } from './h2-session-pool.ts';
import type { UpstreamObserver } from '../request-observation.ts';
import { h2RequestTrailers, h2ResponseHeaders } from './stream-headers.ts';

/** Answers a stream with the error response (and counts it); implemented by the proxy. */
export type StreamFailure = (stream: ServerHttp2Stream, err: ProxyError, grpc: boolean) => void;

/**
 * Forwards one HTTP/2 stream to an HTTP/2 next hop and streams everything back: the
 * response head, DATA with backpressure both ways (pipe), and the trailers both ways —
 * gRPC's status travels in the response trailers, so they are relayed as trailers, never
 * dropped or folded into the head.
 * A trailers-only response (a HEADERS frame with END_STREAM: how gRPC reports an error) is
 * relayed as trailers-only. A reset from either side resets the other.
 */
export function forwardStream(stream: ServerHttp2Stream, headers: OutgoingHttpHeaders, pool: H2SessionPool, grpc: boolean, fail: StreamFailure, observer: UpstreamObserver | null = null): void {
  // Listening from the start: the request's trailers may arrive while a session is still
  // being opened (the body waits in the stream's buffer; an event would be lost).
  const request: RequestEnd = { bodiless: stream.endAfterHeaders, trailers: null };
  // timeouts.streamIdleMs: node refreshes a stream's timer on every frame read or written, and
  // both directions pass through `stream`, so only a stream on which nothing moved fires.
  stream.setTimeout(pool.streamIdleMs, () => idleStream(stream, pool.label, pool.streamIdleMs, grpc, fail));
  if (!request.bodiless) {
    stream.once('trailers', (t: IncomingHttpHeaders) => {
      request.trailers = t;
    });
  }
  const got = pool.session();
  if (got instanceof Promise) {
    got.then(
      (session) => start(stream, headers, request, session, pool, grpc, fail, observer),
      (err: unknown) => fail(stream, asProxyFailure(err, pool.label), grpc),
    );
  } else {
    start(stream, headers, request, got, pool, grpc, fail, observer);
  }
}

interface RequestEnd {
  readonly bodiless: boolean;
  trailers: IncomingHttpHeaders | null;
}

function start(stream: ServerHttp2Stream, headers: OutgoingHttpHeaders, request: RequestEnd, session: ClientHttp2Session, pool: H2SessionPool, grpc: boolean, fail: StreamFailure, observer: UpstreamObserver | null): void {
  if (stream.destroyed || stream.closed) return;
  const label = pool.label;
  const upstream = pool.connectionOf(session);
  if (upstream !== undefined) {
    upstream.requests++;
    observer?.upstreamConnected(upstream);
  }
  const bodiless = request.bodiless;
  let up: ClientHttp2Stream;
  try {
    // With a body, the request may end with trailers of its own; they are relayed too.
    up = session.request(headers, { endStream: bodiless, waitForTrailers: !bodiless });
  } catch (err) {
    fail(stream, new ProxyError('MESHLET_UPSTREAM_RESET', `${label} refused a new stream: ${(err as Error).message}`, { cause: err }), grpc);
    return;
  }
  let trailers: IncomingHttpHeaders | null = null;
  up.once('response', (head, flags: number) => {
    if (stream.destroyed || stream.closed) return;
    const out = h2ResponseHeaders(head);
    // The flags, not up.endAfterHeaders (not yet set when 'response' fires).
    if ((flags & constants.NGHTTP2_FLAG_END_STREAM) !== 0) {
      stream.respond(out, { endStream: true });
      return;
    }
    stream.respond(out, { waitForTrailers: true });
    up.pipe(stream);
  });
  up.once('trailers', (t: IncomingHttpHeaders) => {
    trailers = t;
  });
  stream.on('wantTrailers', () => {
    // RFC 9113 §8.1: a trailer section carries no pseudo-headers.
    stream.sendTrailers(trailers === null ? {} : h2ResponseHeaders(trailers));
  });
  up.on('error', (err: Error) => {
    if (stream.destroyed || stream.closed) return;
    fail(stream, new ProxyError('MESHLET_UPSTREAM_RESET', `${label} reset the stream: ${(err as { code?: string }).code ?? err.message}`, { cause: err }), grpc);
  });
  up.once('close', () => {
    // Reset by the next hop after the head (no 'error' for every code): the client must see a reset too.
    if (up.rstCode !== constants.NGHTTP2_NO_ERROR && stream.headersSent && !stream.closed) stream.close(up.rstCode);
  });
  const cancelUp = (): void => {
    // The client went away (or reset): stop the exchange with the next hop.
    if (!up.closed) up.close(stream.rstCode === constants.NGHTTP2_NO_ERROR ? constants.NGHTTP2_CANCEL : stream.rstCode);
  };
  stream.once('close', cancelUp);
  // 'aborted' comes first, and node may still end the stream's readable side after it: the pipe
  // must not end the next hop's request as if a cut body were complete.
  stream.once('aborted', cancelUp);
  if (!bodiless) {
    // The caller's trailers pass with the identity header (any spelling) removed, as in the head.
    up.on('wantTrailers', () => up.sendTrailers(request.trailers === null ? {} : h2RequestTrailers(request.trailers)));
    stream.pipe(up);
  }
}

/**
 * Nothing moved for timeouts.streamIdleMs: 408 MESHLET_REQUEST_TIMEOUT while the client still
 * owed its request (and the relay was ready for it) or stopped reading, else 504
 * MESHLET_UPSTREAM_TIMEOUT; once the response head went out, a reset. Closing the stream cancels
 * the next hop's stream ('close' above).
 */
function idleStream(stream: ServerHttp2Stream, label: string, idleMs: number, grpc: boolean, fail: StreamFailure): void {
  if (stream.destroyed || stream.closed) return;
  const onClient = (!stream.readableEnded && !stream.isPaused()) || stream.writableNeedDrain;
  fail(stream, idleTimeout(onClient, label, idleMs), grpc);
  // A request body still open would keep the stream (and the next hop's) alive: end it too.
  if (!stream.closed) stream.close(constants.NGHTTP2_NO_ERROR);
}

function asProxyFailure(err: unknown, label: string): ProxyError {
  if (err instanceof ProxyError) return err;
  return new ProxyError('MESHLET_UPSTREAM_CONNECT_FAILED', `cannot open a session to ${label}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}
