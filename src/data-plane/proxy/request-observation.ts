import type * as http from 'node:http';
import type * as http2 from 'node:http2';
import type { ConnectionDirection, TrackedConnection } from './connection-registry.ts';
import { ProxyError } from './http/errors.ts';
import type { ProxyObserver, RequestAuthz } from './proxy-observer.ts';

type Finished = NonNullable<ProxyObserver['requestFinished']>;

/**
 * One request being observed, reported to the observer when it ends. Only made when an
 * observer listens: one object (and its close listener) per request, no timer.
 *
 * `peer` starts as what the proxy knows when the request arrives: inbound, the caller's
 * verified identity; outbound, nothing yet (undefined: "unknown"). Outbound, the forwarding code
 * calls upstreamConnected() with the connection that carries the request on, so the request
 * is labelled with the server identity that connection's mTLS handshake verified (null:
 * a plaintext destination). A request that never got a next-hop connection stays unknown.
 */
abstract class Observation {
  peer: string | null | undefined;
  readonly #finished: Finished;
  readonly #direction: ConnectionDirection;
  readonly #method: string;
  /** Until the deciding step ran: no route ("none"), no decision. */
  #route: string | null | undefined = undefined;
  #authz: RequestAuthz = 'none';
  readonly #started = performance.now();

  constructor(finished: Finished, direction: ConnectionDirection, peer: string | null | undefined, method: string) {
    this.#finished = finished;
    this.#direction = direction;
    this.peer = peer;
    this.#method = method;
  }

  /**
   * What the deciding step said (request-pipeline.ts). The `route` label is the deciding route,
   * null ("unmatched") when a server's default decided — for a denial as for an allow, as in
   * meshlet_authz_decisions_total — and stays undefined ("none") for a request refused before
   * any policy ran (limits, framing, a bad path) or routed outbound.
   */
  decided(decision: { readonly route: string | null | undefined; readonly authz: RequestAuthz } | ProxyError): void {
    if (!(decision instanceof ProxyError)) {
      this.#route = decision.route;
      this.#authz = decision.authz;
    } else if (decision.code === 'MESHLET_DENIED') {
      this.#route = decision.details?.route ?? null;
      this.#authz = 'deny';
    }
  }

  /** Outbound: the next-hop connection that carries this request (its verified server identity). */
  upstreamConnected(upstream: TrackedConnection): void {
    this.peer = upstream.peerIdentity;
  }

  protected report(status: number, grpcStatus: number | null, requestBytes: number, responseBytes: number): void {
    const seconds = (performance.now() - this.#started) / 1000;
    this.#finished(this.#direction, this.peer, this.#route, this.#method, status, grpcStatus, this.#authz, seconds, requestBytes, responseBytes);
  }
}

/**
 * An HTTP/1.1 exchange, reported when its response ends (or the connection is cut). Bytes are
 * the client connection's, as the socket counts them (decrypted bytes on mTLS: the HTTP/1.1
 * messages, heads included, chunked framing included, no TLS records): what it read and wrote
 * since the previous observed request on the connection ended, then the marks move on. Without
 * pipelining (no client meshlet serves pipelines in practice) that is exactly this exchange's
 * request and response; each byte is counted once either way, and no chunk is ever counted.
 */
export class ExchangeObservation extends Observation {
  readonly #res: http.ServerResponse;
  readonly #conn: TrackedConnection;

  constructor(res: http.ServerResponse, conn: TrackedConnection, finished: Finished, direction: ConnectionDirection, peer: string | null | undefined, method: string) {
    super(finished, direction, peer, method);
    this.#res = res;
    this.#conn = conn;
    res.once('close', this.#onClose);
  }

  readonly #onClose = (): void => {
    const conn = this.#conn;
    const read = conn.socket.bytesRead;
    const written = conn.socket.bytesWritten;
    const requestBytes = read - conn.readMark;
    const responseBytes = written - conn.writtenMark;
    conn.readMark = read;
    conn.writtenMark = written;
    const res = this.#res;
    this.report(res.statusCode, grpcStatusOf(res.getHeader('grpc-status')), requestBytes, responseBytes);
  };
}

/**
 * An HTTP/2 stream, from what the stream sent (its head, or the trailers that carry
 * grpc-status). A stream's bytes are not separable from its session's without counting every
 * DATA frame, so HTTP/2 requests count 0 bytes (docs/metrics.md says so; the session's bytes
 * are in meshlet_tcp_read_bytes_total / meshlet_tcp_written_bytes_total).
 */
export class StreamObservation extends Observation {
  readonly #stream: http2.ServerHttp2Stream;
  readonly #grpc: boolean;

  constructor(stream: http2.ServerHttp2Stream, finished: Finished, direction: ConnectionDirection, peer: string | null | undefined, method: string, grpc: boolean) {
    super(finished, direction, peer, method);
    this.#stream = stream;
    this.#grpc = grpc;
    stream.once('close', this.#onClose);
  }

  readonly #onClose = (): void => {
    const stream = this.#stream;
    const head = stream.sentHeaders ?? {};
    const status = Number(head[':status'] ?? 0);
    // gRPC: trailers carry the status; a trailers-only response carries it in the head;
    // a reset stream never got one (UNAVAILABLE is what the client library reports).
    const grpcStatus = this.#grpc ? (grpcStatusOf(stream.sentTrailers?.['grpc-status']) ?? grpcStatusOf(head['grpc-status']) ?? 14) : null;
    this.report(status, grpcStatus, 0, 0);
  };
}

/** The next-hop connection carrying a request, for whoever observes it (outbound: its peer label). */
export interface UpstreamObserver {
  upstreamConnected(upstream: TrackedConnection): void;
}

function grpcStatusOf(v: unknown): number | null {
  if (v === undefined || v === null) return null;
  const n = Number(Array.isArray(v) ? v[0] : v);
  return Number.isInteger(n) ? n : null;
}
