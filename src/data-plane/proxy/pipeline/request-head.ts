import type * as http from 'node:http';
import { isGrpcContentType, malformedRequest, missingHost, ProxyError, tooManyHeaders } from '../http/errors.ts';
import { forwardHeaders, PEER_IDENTITY_HEADER, refusedHead, type ForwardedHead } from '../http/headers.ts';
import { readStreamRequest, type StreamRequestHead } from '../h2/stream-headers.ts';

/**
 * The protocol adapters: what node:http or node:http2 parsed, read once into one
 * protocol-neutral head that every later step of the pipeline (request-pipeline.ts) works on,
 * with the head checks every protocol owes before anything else looks at the request:
 * limits.maxHeaderCount, then the framing and Host doubts a proxy must refuse (request
 * smuggling: RFC 9112 §6.1, §3.2; RFC 9113 §8.1.1, §8.3.1). A head that fails them carries its
 * `refusal`, so the request is still observed (metrics count it with route "none").
 *
 * Headers are read from the flat rawHeaders arrays and filtered for forwarding in the same
 * pass (headers.ts, stream-headers.ts): the identity header and every `_` spelling of it are
 * dropped here, so no later step can forward a caller's copy.
 */
export interface RequestHead {
  readonly method: string;
  /** The request target as sent: origin-form path and query (HTTP/1.1 may also send absolute-form). */
  readonly target: string;
  /** Host, or :authority (else Host) on HTTP/2; '' when the request names none. */
  readonly authority: string;
  readonly contentType: string | undefined;
  /** A gRPC call (content-type application/grpc…): its failures are answered with grpc-status. */
  readonly grpc: boolean;
  /** Why the request is refused before any decision, or null. */
  readonly refusal: ProxyError | null;
}

/** An HTTP/1.1 request (also the head of an Upgrade request). */
export interface Http1Head extends RequestHead {
  readonly protocol: 'http1';
  /** The fields to forward, and what the scan saw (framing). Mutable: a step may add a field. */
  readonly forward: ForwardedHead;
  readonly versionMinor: number;
}

/** An HTTP/2 stream. */
export interface StreamHead extends RequestHead {
  readonly protocol: 'h2';
  readonly stream: StreamRequestHead;
}

export function readHttp1Head(req: http.IncomingMessage, maxHeaderCount: number): Http1Head {
  const raw = req.rawHeaders;
  const method = req.method ?? 'GET';
  const target = req.url ?? '/';
  const versionMinor = req.httpVersionMinor;
  const forward = forwardHeaders(raw, PEER_IDENTITY_HEADER);
  let refusal: ProxyError | null = null;
  if (raw.length > maxHeaderCount * 2) refusal = tooManyHeaders(maxHeaderCount, true);
  else refusal = refusedHead(forward, versionMinor) ?? (forward.host === '' && versionMinor === 1 ? missingHost() : null);
  return { protocol: 'http1', method, target, authority: forward.host, contentType: forward.contentType, grpc: false, refusal, forward, versionMinor };
}

export function readStreamHead(raw: readonly string[], maxHeaderCount: number): StreamHead {
  const stream = readStreamRequest(raw, PEER_IDENTITY_HEADER);
  let refusal: ProxyError | null = null;
  if (stream.fieldCount > maxHeaderCount) refusal = tooManyHeaders(maxHeaderCount, false);
  else if (stream.malformed !== null) refusal = malformedRequest(stream.malformed, false);
  else if (stream.method === 'CONNECT' || stream.path === '') refusal = new ProxyError('MESHLET_BAD_REQUEST', 'CONNECT (and requests without :path) are not proxied');
  return { protocol: 'h2', method: stream.method, target: stream.path, authority: stream.authority, contentType: stream.contentType, grpc: isGrpcContentType(stream.contentType), refusal, stream };
}
