import type { ServerResponse } from 'node:http';
import { http } from '../../../common/net/node-http.ts';
import { constants as h2constants, type ServerHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import type { ConnectionDirection } from '../connection-registry.ts';
import { markConnectionDead } from '../http/client-error.ts';
import { asProxyError, MESHLET_ERROR_HEADER, PROXY_ERROR_CATALOG, type ProxyError, type ProxyErrorCode } from '../http/errors.ts';
import type { ProxyObserver } from '../proxy-observer.ts';

/**
 * The ONE place a failure becomes what the caller sees, for every protocol the proxy serves
 * (src/data-plane/proxy/http/errors.ts names the failures; nothing else writes an error response):
 *
 * | caller speaks | answer |
 * |---|---|
 * | HTTP/1.1 request | status, `x-meshlet-error: <code>`, JSON body `{"error":{code,message,…details}}`; `connection: close` after a framing doubt |
 * | HTTP/2 stream | the same status, header and body |
 * | gRPC call (HTTP/2, application/grpc) | trailers-only: `:status 200`, `grpc-status` from the catalog, percent-encoded `grpc-message`, the same header |
 * | HTTP/1.1 Upgrade (not yet upgraded) | the HTTP/1.1 answer as raw bytes, then the connection is closed |
 * | bytes the parser refused (no request object) | the same raw bytes, connection closed (client-error.ts) |
 *
 * When the response head already went out (the next hop died mid-body), there is no honest
 * answer left but cutting: the HTTP/1.1 connection is destroyed, the HTTP/2 stream reset
 * (INTERNAL_ERROR) — a truncated body or a missing grpc-status must never look complete.
 *
 * A CallerAnswers object belongs to one proxy direction and counts every answer it writes
 * (observer.refused: meshlet_proxy_refusals_total); its methods are bound once, so the
 * forwarding code can hold them without a closure per request.
 */
export class CallerAnswers {
  readonly #direction: ConnectionDirection;
  readonly #observer: ProxyObserver | undefined;

  constructor(direction: ConnectionDirection, observer: ProxyObserver | undefined) {
    this.#direction = direction;
    this.#observer = observer;
  }

  /** Counts a refusal written elsewhere (the parser's raw answer, a flood GOAWAY). */
  readonly counted = (code: ProxyErrorCode): void => {
    this.#observer?.refused?.(this.#direction, code);
  };

  readonly http1 = (res: ServerResponse, err: ProxyError): void => {
    this.counted(err.code);
    // The request's socket, not the response's: a response queued behind another has none yet.
    if (err.closeConnection) markConnectionDead(res.req.socket);
    respondWithError(res, err);
  };

  readonly stream = (stream: ServerHttp2Stream, err: ProxyError, grpc: boolean): void => {
    this.counted(err.code);
    respondStreamWithError(stream, err, grpc);
  };

  /** An Upgrade request refused before its socket became a tunnel. */
  readonly upgrade = (socket: Duplex, err: ProxyError): void => {
    this.counted(err.code);
    if (socket.writable) socket.end(rawErrorResponse(err));
    else socket.destroy();
  };
}

/** The body a client gets; stable field names (documented in docs/proxy.md). */
export function errorBody(err: ProxyError): string {
  return JSON.stringify({ error: { code: err.code, message: err.message, ...err.details } });
}

/** HTTP/1.1: the error response on `res`, or — once the head went out — the connection cut. */
export function respondWithError(res: ServerResponse, err: unknown): void {
  const perr = asProxyError(err);
  if (res.headersSent || res.writableEnded) {
    res.destroy(perr);
    return;
  }
  const body = errorBody(perr);
  const headers: string[] = [
    'content-type', 'application/json',
    'content-length', String(Buffer.byteLength(body)),
    MESHLET_ERROR_HEADER, perr.code,
  ];
  if (perr.closeConnection) headers.push('connection', 'close');
  res.writeHead(perr.status, headers);
  res.end(body);
}

/**
 * The raw bytes of an error response for a connection that has no response object: the parser
 * refused the head (node:http's 'clientError'), or an Upgrade request is refused. Always
 * closes the connection.
 */
export function rawErrorResponse(err: ProxyError): string {
  const body = errorBody(err);
  return (
    `HTTP/1.1 ${err.status} ${http.STATUS_CODES[err.status] ?? 'Error'}\r\n` +
    `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
    `${MESHLET_ERROR_HEADER}: ${err.code}\r\nconnection: close\r\n\r\n${body}`
  );
}

/** gRPC's percent-encoding of grpc-message: everything outside 0x20-0x7E, and "%", as %XX of UTF-8. */
export function encodeGrpcMessage(message: string): string {
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : '%' + byte.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

/** The grpc-message of a failure: the message, plus the denying route and reason when there are some. */
function grpcMessage(err: ProxyError): string {
  const reason = err.details?.reason;
  if (reason == null) return err.message;
  const route = err.details?.route;
  return `${err.message}${route ? ` (route ${route})` : ''}: ${reason}`;
}

/**
 * HTTP/2: gRPC calls get a trailers-only response (a HEADERS frame that ends the stream, which
 * gRPC clients read as the call's status); anything else the HTTP/1.1 status and JSON body.
 * Once the head went out, the stream is reset.
 */
export function respondStreamWithError(stream: ServerHttp2Stream, err: unknown, grpc: boolean): void {
  const perr = asProxyError(err);
  if (stream.destroyed || stream.closed) return;
  if (stream.headersSent) {
    stream.close(h2constants.NGHTTP2_INTERNAL_ERROR);
    return;
  }
  if (grpc) {
    stream.respond(
      {
        ':status': 200,
        'content-type': 'application/grpc',
        'grpc-status': String(PROXY_ERROR_CATALOG[perr.code].grpcStatus),
        'grpc-message': encodeGrpcMessage(grpcMessage(perr)),
        [MESHLET_ERROR_HEADER]: perr.code,
      },
      { endStream: true },
    );
    return;
  }
  const body = errorBody(perr);
  stream.respond({
    ':status': perr.status,
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(body)),
    [MESHLET_ERROR_HEADER]: perr.code,
  });
  stream.end(body);
}
