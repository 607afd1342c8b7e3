import type * as http from 'node:http';
import type * as http2 from 'node:http2';
import type { ConnectionDirection } from './connection-registry.ts';
import type { ProxyObserver, RequestAuthz } from './proxy-observer.ts';

type Finished = NonNullable<ProxyObserver['requestFinished']>;

/**
 * Reports an HTTP/1.1 exchange to the observer when its response ends (or the connection is
 * cut). Only installed when an observer listens. Bytes are the client connection's wire bytes
 * while the exchange ran: exact for the one request in flight on a keep-alive connection,
 * which HTTP/1.1 without pipelining guarantees.
 */
export function observeExchange(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  finished: Finished,
  direction: ConnectionDirection,
  peer: string | null,
  route: string | null | undefined,
  method: string,
  authz: RequestAuthz,
): void {
  const started = process.hrtime.bigint();
  const socket = req.socket;
  const read0 = socket.bytesRead;
  const written0 = socket.bytesWritten;
  res.once('close', () => {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const grpcStatus = grpcStatusOf(res.getHeader('grpc-status'));
    finished(direction, peer, route, method, res.statusCode, grpcStatus, authz, seconds, socket.bytesRead - read0, socket.bytesWritten - written0);
  });
}

/**
 * The same for an HTTP/2 stream, from what the stream sent (its head, or the trailers that
 * carry grpc-status). A stream's wire bytes are not separable from its session's, so HTTP/2
 * requests count 0 bytes (docs/metrics.md says so).
 */
export function observeStream(
  stream: http2.ServerHttp2Stream,
  finished: Finished,
  direction: ConnectionDirection,
  peer: string | null,
  route: string | null | undefined,
  method: string,
  grpc: boolean,
  authz: RequestAuthz,
): void {
  const started = process.hrtime.bigint();
  stream.once('close', () => {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const head = stream.sentHeaders ?? {};
    const status = Number(head[':status'] ?? 0);
    // gRPC: trailers carry the status; a trailers-only response carries it in the head;
    // a reset stream never got one (UNAVAILABLE is what the client library reports).
    const grpcStatus = grpc ? (grpcStatusOf(stream.sentTrailers?.['grpc-status']) ?? grpcStatusOf(head['grpc-status']) ?? 14) : null;
    finished(direction, peer, route, method, status, grpcStatus, authz, seconds, 0, 0);
  });
}

function grpcStatusOf(v: unknown): number | null {
  if (v === undefined || v === null) return null;
  const n = Number(Array.isArray(v) ? v[0] : v);
  return Number.isInteger(n) ? n : null;
}
