import { MeshletError } from '../../../common/errors/meshlet-error.ts';

/**
 * Every way a proxied HTTP request can fail, each with its HTTP status and gRPC status. A
 * failure is made once, where it happens (parser, limits, policy, pool, connect, TLS), as a
 * ProxyError with a code from this catalog; src/data-plane/proxy/pipeline/caller-answer.ts is the ONE place that turns it into what the caller
 * sees, the same for every protocol: a status, an `x-meshlet-error: <code>` header and a small
 * JSON body; for a gRPC call (HTTP/2, content-type application/grpc) a trailers-only response
 * with `grpc-status` (7 PERMISSION_DENIED for a denial, which gRPC clients do not retry; 14
 * UNAVAILABLE when the next hop failed, which they may).
 * The catalog is the contract documented in docs/proxy.md (a test keeps the two in sync).
 */
export const PROXY_ERROR_CATALOG = {
  // The request itself is unacceptable (the caller's fault).
  MESHLET_BAD_REQUEST: { status: 400, grpcStatus: 13, summary: 'the request could not be parsed or is ambiguous (request smuggling refused)' },
  MESHLET_BAD_PATH: { status: 400, grpcStatus: 3, summary: 'the request path was refused by path normalization' },
  MESHLET_MISSING_HOST: { status: 400, grpcStatus: 3, summary: 'an outbound request named no destination (no Host, no absolute URI)' },
  MESHLET_HEADERS_TOO_LARGE: { status: 431, grpcStatus: 8, summary: 'the request head is larger than limits.maxHeaderBytes (or has so many fields past limits.maxHeaderCount that the parser stops)' },
  MESHLET_TOO_MANY_HEADERS: { status: 431, grpcStatus: 8, summary: 'the request has more header fields than limits.maxHeaderCount' },
  MESHLET_HEADERS_TIMEOUT: { status: 408, grpcStatus: 4, summary: 'the request head did not arrive within timeouts.requestHeadersMs' },
  // Policy.
  MESHLET_DENIED: { status: 403, grpcStatus: 7, summary: 'the policy of the destination does not allow this caller on this route' },
  MESHLET_UNKNOWN_DESTINATION: { status: 502, grpcStatus: 14, summary: 'the destination is neither a mesh destination nor a configured plaintext one' },
  // The next hop (peer sidecar or the local app) failed.
  MESHLET_UPSTREAM_CONNECT_FAILED: { status: 503, grpcStatus: 14, summary: 'the next hop refused or dropped the connection attempt' },
  MESHLET_UPSTREAM_CONNECT_TIMEOUT: { status: 503, grpcStatus: 14, summary: 'the next hop did not accept a connection within timeouts.connectMs' },
  MESHLET_UPSTREAM_TLS_FAILED: { status: 502, grpcStatus: 14, summary: 'the mTLS handshake with the peer sidecar failed' },
  MESHLET_UPSTREAM_TLS_TIMEOUT: { status: 502, grpcStatus: 14, summary: 'the mTLS handshake did not finish within timeouts.tlsHandshakeMs' },
  MESHLET_UPSTREAM_IDENTITY_REJECTED: { status: 502, grpcStatus: 14, summary: 'the peer sidecar presented an identity the destination does not expect' },
  MESHLET_UPSTREAM_RESET: { status: 502, grpcStatus: 14, summary: 'the next hop closed the connection before sending a complete response head' },
  MESHLET_UPSTREAM_BAD_RESPONSE: { status: 502, grpcStatus: 14, summary: 'the next hop sent a response that could not be parsed' },
  // Overload: refused fast rather than queued without bound (docs/proxy.md "Timeouts and limits").
  MESHLET_UPSTREAM_BUSY: { status: 503, grpcStatus: 14, summary: 'every pooled connection to the next hop is busy and limits.maxPendingPerUpstream requests already wait' },
  MESHLET_UPSTREAM_QUEUE_TIMEOUT: { status: 503, grpcStatus: 14, summary: 'no pooled connection to the next hop became free within timeouts.queueWaitMs' },
  MESHLET_CALLER_LIMIT: { status: 503, grpcStatus: 8, summary: 'this caller already has limits.maxInFlightPerCaller requests in flight to this app port' },
  MESHLET_UPSTREAM_TIMEOUT: { status: 504, grpcStatus: 4, summary: 'no byte moved for timeouts.streamIdleMs while the proxy waited on the next hop' },
  MESHLET_REQUEST_TIMEOUT: { status: 408, grpcStatus: 4, summary: 'no byte moved for timeouts.streamIdleMs while the proxy waited on the client' },
  MESHLET_H2_RESET_FLOOD: { status: 429, grpcStatus: 8, summary: 'an HTTP/2 session reset too many streams before their response (rapid reset): GOAWAY ENHANCE_YOUR_CALM, no response' },
  MESHLET_INTERNAL: { status: 500, grpcStatus: 13, summary: 'an unexpected failure inside the sidecar' },
} as const satisfies Record<string, { status: number; grpcStatus: number; summary: string }>;

export type ProxyErrorCode = keyof typeof PROXY_ERROR_CATALOG;

export const MESHLET_ERROR_HEADER = 'x-meshlet-error';

/** A failure of one proxied request; `code` picks status and header from the catalog. */
export class ProxyError extends MeshletError {
  declare readonly code: ProxyErrorCode;
  readonly status: number;
  /** Extra fields for the JSON body (e.g. the denying route and reason). */
  readonly details: Readonly<Record<string, string | null>> | undefined;
  /** Close the client connection after the response (parse failures: the stream is unusable). */
  readonly closeConnection: boolean;

  constructor(
    code: ProxyErrorCode,
    message: string,
    options?: ErrorOptions & { details?: Record<string, string | null>; closeConnection?: boolean },
  ) {
    super(code, message, options);
    this.status = PROXY_ERROR_CATALOG[code].status;
    this.details = options?.details;
    this.closeConnection = options?.closeConnection ?? false;
  }
}

/** RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without Host. */
export function missingHost(): ProxyError {
  return malformedRequest('no Host header; RFC 9112 requires one', true);
}

/** More than limits.maxHeaderCount header fields; `closeConnection` on HTTP/1.1. */
export function tooManyHeaders(maxHeaderCount: number, closeConnection: boolean): ProxyError {
  return new ProxyError('MESHLET_TOO_MANY_HEADERS', `more than ${maxHeaderCount} header fields`, closeConnection ? { closeConnection: true } : undefined);
}

/** 400 MESHLET_BAD_REQUEST for a request the proxy refuses to forward; `closeConnection` after a framing doubt. */
export function malformedRequest(why: string, closeConnection: boolean): ProxyError {
  return new ProxyError('MESHLET_BAD_REQUEST', `malformed request refused (${why})`, closeConnection ? { closeConnection: true } : undefined);
}

/**
 * timeouts.streamIdleMs expired on an exchange or stream: 408 MESHLET_REQUEST_TIMEOUT when the
 * proxy was waiting on the client, else 504 MESHLET_UPSTREAM_TIMEOUT (http1-pool.ts, forward-stream.ts).
 */
export function idleTimeout(onClient: boolean, label: string, idleMs: number): ProxyError {
  return onClient
    ? new ProxyError('MESHLET_REQUEST_TIMEOUT', `no byte from or to the client for ${idleMs} ms while forwarding to ${label} (timeouts.streamIdleMs)`)
    : new ProxyError('MESHLET_UPSTREAM_TIMEOUT', `no byte from ${label} for ${idleMs} ms (timeouts.streamIdleMs)`);
}

/** Any thrown value -> ProxyError, so the responder never sees an uncoded failure. */
export function asProxyError(err: unknown): ProxyError {
  if (err instanceof ProxyError) return err;
  return new ProxyError('MESHLET_INTERNAL', 'internal proxy error', { cause: err });
}

/** gRPC's own framing of a request is its content-type (gRPC over HTTP/2 spec: application/grpc[+proto|+json|;…]). */
export function isGrpcContentType(contentType: string | undefined): boolean {
  return contentType !== undefined && contentType.startsWith('application/grpc');
}
