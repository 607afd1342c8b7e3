import type { NormalizedPath } from './normalize-path.ts';
import type { Decision } from './types.ts';

/**
 * The ONE place that turns a policy outcome into what the client sees:
 * - HTTP denial: 403, JSON `{"error":"forbidden","route":…,"reason":…}`;
 * - gRPC denial: a trailers-only response (HTTP/2 :status 200, content-type application/grpc,
 *   grpc-status 7 PERMISSION_DENIED, grpc-message percent-encoded per the gRPC HTTP/2 spec) —
 *   PERMISSION_DENIED is not retryable by gRPC clients, which is what we want;
 * - a refused path: HTTP 400 `{"error":"bad_request","code":…,"reason":…}`; gRPC
 *   grpc-status 3 INVALID_ARGUMENT;
 * - opaque TCP has no response: the sidecar closes the connection.
 * Responses for a decision are built once and cached by the (frozen, per-reload) decision
 * object, so denying a flood of requests serializes nothing.
 */
export interface PolicyResponse {
  /** HTTP status; for gRPC it is the HTTP/2 :status (200) of the trailers-only response. */
  readonly status: number;
  /** Response headers, no pseudo-headers. For gRPC these are the trailers-only headers. */
  readonly headers: Readonly<Record<string, string>>;
  /** Empty for gRPC (trailers-only: the headers frame ends the stream). */
  readonly body: string;
}

export type ResponseProtocol = 'http' | 'grpc';

export const GRPC_PERMISSION_DENIED = 7;
export const GRPC_INVALID_ARGUMENT = 3;

/** gRPC's percent-encoding of grpc-message: everything outside 0x20-0x7E, and "%", as %XX of UTF-8. */
export function encodeGrpcMessage(message: string): string {
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : '%' + byte.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

function json(status: number, body: unknown): PolicyResponse {
  const text = JSON.stringify(body);
  return Object.freeze({
    status,
    headers: Object.freeze({ 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), 'cache-control': 'no-store' }),
    body: text,
  });
}

function grpc(code: number, message: string): PolicyResponse {
  return Object.freeze({
    status: 200,
    headers: Object.freeze({ 'content-type': 'application/grpc', 'grpc-status': String(code), 'grpc-message': encodeGrpcMessage(message) }),
    body: '',
  });
}

const httpDenials = new WeakMap<Decision, PolicyResponse>();
const grpcDenials = new WeakMap<Decision, PolicyResponse>();

/** The response for a deny decision (callers only call it when `decision.decision === 'deny'`). */
export function denialResponse(decision: Decision, protocol: ResponseProtocol): PolicyResponse {
  const cache = protocol === 'grpc' ? grpcDenials : httpDenials;
  let r = cache.get(decision);
  if (r === undefined) {
    r =
      protocol === 'grpc'
        ? grpc(GRPC_PERMISSION_DENIED, decision.reason)
        : json(403, { error: 'forbidden', route: decision.route, reason: decision.reason });
    cache.set(decision, r);
  }
  return r;
}

const badPathHttp = new WeakMap<object, PolicyResponse>();
const badPathGrpc = new WeakMap<object, PolicyResponse>();

/** The response for a path normalizePath refused (the refusals are frozen singletons too). */
export function badPathResponse(refusal: NormalizedPath & { ok: false }, protocol: ResponseProtocol): PolicyResponse {
  const cache = protocol === 'grpc' ? badPathGrpc : badPathHttp;
  let r = cache.get(refusal);
  if (r === undefined) {
    r = protocol === 'grpc' ? grpc(GRPC_INVALID_ARGUMENT, refusal.reason) : json(400, { error: 'bad_request', code: refusal.code, reason: refusal.reason });
    cache.set(refusal, r);
  }
  return r;
}
