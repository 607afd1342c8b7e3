import type { Duplex } from 'node:stream';
import { malformedRequest, ProxyError, type ProxyErrorCode } from './errors.ts';
import { rawErrorResponse } from '../pipeline/caller-answer.ts';

// Client connections answered with a refusal that closes them (a framing doubt: smuggling,
// RFC 9112 §6.1, §3.2; too many or too large header fields). node:http may already have parsed
// requests pipelined behind the refused one, and emits them as the socket's remaining bytes
// are read: they are never forwarded (isConnectionDead), and node closes the socket once the
// refusal's `connection: close` response is written. A WeakSet: nothing to clean up.
const dead = new WeakSet<object>();

/** Nothing later on this client connection is processed (call it before answering the refusal). */
export function markConnectionDead(socket: Duplex | null): void {
  if (socket !== null) dead.add(socket);
}

/** One lookup per HTTP/1.1 request: was this connection refused earlier? */
export function isConnectionDead(socket: Duplex | null): boolean {
  return socket !== null && dead.has(socket);
}

/**
 * node:http's 'clientError': the parser (llhttp, strict mode) refused the bytes a client sent
 * before any request object existed — conflicting Content-Length, Content-Length with
 * Transfer-Encoding, obs-fold, invalid header bytes, an oversized head, a head that took too
 * long. Answer once with the catalog response and close: after a framing error nothing later
 * on this connection can be trusted (that is what request smuggling exploits).
 *
 * Some parser errors come after node already handed the head over (an unknown Transfer-Encoding
 * is reported after the head is complete): the proxy refused that request itself and its
 * response is on the way, so a second answer is never written.
 */
export function handleClientError(err: Error & { code?: string }, socket: Duplex, onRefused: (code: ProxyErrorCode) => void): void {
  if (isConnectionDead(socket)) {
    if (!socket.writable) socket.destroy();
    return;
  }
  markConnectionDead(socket);
  const perr = parserFailure(err);
  if (perr === null || !socket.writable) {
    socket.destroy();
    return;
  }
  onRefused(perr.code);
  socket.end(rawErrorResponse(perr));
}

function parserFailure(err: Error & { code?: string }): ProxyError | null {
  switch (err.code) {
    case 'ECONNRESET':
    case 'EPIPE':
      return null;
    case 'HPE_HEADER_OVERFLOW':
      return new ProxyError('MESHLET_HEADERS_TOO_LARGE', 'request head too large (limits.maxHeaderBytes / limits.maxHeaderCount)', { closeConnection: true });
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new ProxyError('MESHLET_HEADERS_TIMEOUT', 'request head not received in time', { closeConnection: true });
    default:
      return malformedRequest(err.code ?? 'parse error', true);
  }
}
