import type { Duplex } from 'node:stream';
import { ProxyError, rawErrorResponse, type ProxyErrorCode } from './errors.ts';

/**
 * node:http's 'clientError': the parser (llhttp, strict mode) refused the bytes a client sent
 * before any request object existed — conflicting Content-Length, Content-Length with
 * Transfer-Encoding, obs-fold, invalid header bytes, an oversized head, a head that took too
 * long. Answer once with the catalog response and close: after a framing error nothing later
 * on this connection can be trusted (that is what request smuggling exploits).
 */
export function handleClientError(err: Error & { code?: string }, socket: Duplex, onRefused: (code: ProxyErrorCode) => void): void {
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
      return new ProxyError('MESHLET_BAD_REQUEST', `malformed request refused (${err.code ?? 'parse error'})`, { closeConnection: true });
  }
}
