import type * as http from 'node:http';
import type * as http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import type { ProxySettings } from '../config.ts';
import type { ConnectionDirection, TrackedConnection } from '../connection-registry.ts';
import { isConnectionDead } from '../http/client-error.ts';
import { ProxyError } from '../http/errors.ts';
import { PEER_IDENTITY_HEADER } from '../http/headers.ts';
import { forwardRequest, type ForwardingProxy, type NextHop } from '../http/forward-request.ts';
import { connectTunnelHop, type NextHopContext, type NextHopTarget } from '../http/next-hop-socket.ts';
import { forwardStream } from '../h2/forward-stream.ts';
import { forwardStreamToHttp1 } from '../h2/forward-stream-to-http1.ts';
import type { H2SessionPool } from '../h2/h2-session-pool.ts';
import { h2ForwardHeaders, http1ForwardHeaders } from '../h2/stream-headers.ts';
import { forwardUpgrade, refusedUpgrade } from '../upgrade/forward-upgrade.ts';
import type { ProxyObserver, RequestAuthz } from '../proxy-observer.ts';
import { ExchangeObservation, StreamObservation } from '../request-observation.ts';
import { CallerAnswers } from './caller-answer.ts';
import { readHttp1Head, readStreamHead, type Http1Head, type StreamHead } from './request-head.ts';

/**
 * Where a decided request goes: a next hop and the ways to reach it. Inbound it is one app
 * port; outbound one destination (a peer sidecar over mTLS, or a configured plaintext one).
 * Made once per port or destination, never per request.
 */
export interface Destination {
  /** HTTP/1.1 exchanges — and HTTP/2 streams to an HTTP/1.1 app — of this caller. */
  http1(caller: string | null): NextHop;
  /** True when a stream goes to the next hop as an HTTP/2 stream; false: over HTTP/1.1. */
  streamsOverH2(grpc: boolean): boolean;
  /** The multiplexed HTTP/2 session to the next hop (made on first use). */
  h2(): H2SessionPool;
  /** Admits one HTTP/2 stream of this caller, or the refusal (inbound fairness). */
  admitStream(caller: string | null, stream: http2.ServerHttp2Stream): ProxyError | null;
  /** Where an Upgrade request's own connection goes. */
  readonly tunnel: NextHopTarget;
  /** Closes the pools (drain). */
  close(): Promise<void>;
}

/** What the deciding step says about an admitted request. */
export interface Decision {
  readonly destination: Destination;
  /** The origin-form target to send (normalized path and query inbound). */
  readonly path: string;
  /** The `route` metrics label: the deciding route, null when a default decided, undefined when no policy ran. */
  readonly route: string | null | undefined;
  readonly authz: RequestAuthz;
  /** The caller identity to tell the next hop (x-meshlet-peer-identity), or null. */
  readonly identity: string | null;
}

/**
 * The step where inbound and outbound differ: inbound normalizes the path and asks the policy
 * (src/data-plane/proxy/inbound/authorize.ts); outbound resolves the destination (src/data-plane/proxy/outbound/route.ts).
 * A refusal is returned, never thrown.
 */
export interface DecideStep {
  /** Synchronous whenever it can be (a configured route, a cached discovery answer); a promise only when it must ask. Never rejects. */
  decide(head: Http1Head | StreamHead, conn: TrackedConnection): Decision | ProxyError | Promise<Decision | ProxyError>;
}

export interface RequestPipelineOptions {
  readonly direction: ConnectionDirection;
  readonly settings: ProxySettings;
  readonly hopContext: NextHopContext;
  readonly observer: ProxyObserver | undefined;
  readonly decide: DecideStep;
  /** Asked when a response head is about to go out: true adds `connection: close` (the proxy drains). */
  readonly draining: () => boolean;
}

/**
 * One request's way through a sidecar, the same for every protocol and both directions —
 * the accept, detect and TLS layers (the proxies) hand it a parsed HTTP/1.1 request, an
 * Upgrade request or an HTTP/2 stream, and it runs, top to bottom:
 *
 *   adapter (request-head.ts)  one protocol-neutral head; limits and framing checked
 *   observe                    the request is counted from here on, whatever happens next
 *   decide                     inbound: normalize + authorize; outbound: route
 *   forward                    HTTP/1.1 pool, HTTP/2 session, HTTP/2→HTTP/1.1, or a tunnel
 *
 * and every refusal on the way goes to the one answering place (caller-answer.ts). Per
 * request it allocates the head, the decision and (when metrics listen) the observation:
 * no closure, promise or timer.
 */
export class RequestPipeline implements ForwardingProxy {
  readonly answers: CallerAnswers;
  readonly #direction: ConnectionDirection;
  readonly #maxHeaderCount: number;
  readonly #hopContext: NextHopContext;
  readonly #observer: ProxyObserver | undefined;
  readonly #decide: DecideStep;
  readonly #draining: () => boolean;

  constructor(opts: RequestPipelineOptions) {
    this.#direction = opts.direction;
    this.#maxHeaderCount = opts.settings.limits.maxHeaderCount;
    this.#hopContext = opts.hopContext;
    this.#observer = opts.observer;
    this.#decide = opts.decide;
    this.#draining = opts.draining;
    this.answers = new CallerAnswers(opts.direction, opts.observer);
  }

  closeAfterResponse(): boolean {
    return this.#draining();
  }

  fail(res: http.ServerResponse, err: ProxyError): void {
    this.answers.http1(res, err);
  }

  /** An HTTP/1.1 request on a connection the listener accepted (`conn`: its /connections entry). */
  request(req: http.IncomingMessage, res: http.ServerResponse, conn: TrackedConnection | undefined): void {
    // Verification failed after the parser already had bytes: never forward.
    if (conn === undefined) return void req.socket.destroy();
    // Pipelined behind a refusal that closes the connection: dropped, never answered (node
    // closes the socket after the refusal's response).
    if (isConnectionDead(req.socket)) return;
    conn.requests++;
    const head = readHttp1Head(req, this.#maxHeaderCount);
    const finished = this.#observer?.requestFinished;
    const observation = finished === undefined ? null : new ExchangeObservation(res, conn, finished, this.#direction, this.#initialPeer(conn), head.method);
    const decision = head.refusal ?? this.#decide.decide(head, conn);
    if (decision instanceof Promise) return void decision.then((d) => this.#requestDecided(req, res, conn, head, observation, d));
    this.#requestDecided(req, res, conn, head, observation, decision);
  }

  #requestDecided(req: http.IncomingMessage, res: http.ServerResponse, conn: TrackedConnection, head: Http1Head, observation: ExchangeObservation | null, decision: Decision | ProxyError): void {
    // Decided after a wait (discovery): the client may have gone meanwhile.
    if (res.destroyed) return;
    observation?.decided(decision);
    if (decision instanceof ProxyError) return this.answers.http1(res, decision);
    if (decision.identity !== null) head.forward.headers.push(PEER_IDENTITY_HEADER, decision.identity);
    forwardRequest(req, res, decision.destination.http1(conn.peerIdentity), decision.path, head.forward, this, this.#direction === 'outbound' ? observation : null);
  }

  /** An HTTP/1.1 request with Upgrade (WebSocket): decided like any request, then a tunnel of its own. Not in request metrics. */
  upgrade(req: http.IncomingMessage, socket: Duplex, headBytes: Buffer, conn: TrackedConnection | undefined): void {
    if (conn === undefined) return void socket.destroy();
    // Pipelined behind a refusal whose response is already written: flush it, then close.
    if (isConnectionDead(socket)) return void socket.end();
    conn.requests++;
    const upgrade = req.headers.upgrade ?? '';
    if (refusedUpgrade(upgrade)) {
      return this.answers.upgrade(socket, new ProxyError('MESHLET_BAD_REQUEST', 'Upgrade: h2c is refused (an h2c tunnel would carry requests the policy never sees); speak HTTP/2 with prior knowledge instead', { closeConnection: true }));
    }
    const head = readHttp1Head(req, this.#maxHeaderCount);
    const decision = head.refusal ?? this.#decide.decide(head, conn);
    if (decision instanceof Promise) return void decision.then((d) => this.#upgradeDecided(socket, headBytes, head, upgrade, d));
    this.#upgradeDecided(socket, headBytes, head, upgrade, decision);
  }

  #upgradeDecided(socket: Duplex, headBytes: Buffer, head: Http1Head, upgrade: string, decision: Decision | ProxyError): void {
    if (socket.destroyed) return;
    if (decision instanceof ProxyError) return this.answers.upgrade(socket, decision);
    if (decision.identity !== null) head.forward.headers.push(PEER_IDENTITY_HEADER, decision.identity);
    const tunnel = decision.destination.tunnel;
    forwardUpgrade(socket, headBytes, { method: head.method, path: decision.path, headers: head.forward.headers, upgrade }, () => connectTunnelHop(tunnel, this.#hopContext), this.answers.upgrade);
  }

  /** An HTTP/2 stream (`raw`: node's flat rawHeaders) on a connection the listener accepted. */
  stream(stream: http2.ServerHttp2Stream, raw: string[], conn: TrackedConnection): void {
    stream.on('error', ignore);
    conn.requests++;
    const head = readStreamHead(raw, this.#maxHeaderCount);
    const grpc = head.grpc;
    const finished = this.#observer?.requestFinished;
    const observation = finished === undefined ? null : new StreamObservation(stream, finished, this.#direction, this.#initialPeer(conn), head.method, grpc);
    const decision = head.refusal ?? this.#decide.decide(head, conn);
    if (decision instanceof Promise) return void decision.then((d) => this.#streamDecided(stream, conn, head, observation, d));
    this.#streamDecided(stream, conn, head, observation, decision);
  }

  #streamDecided(stream: http2.ServerHttp2Stream, conn: TrackedConnection, head: StreamHead, observation: StreamObservation | null, decision: Decision | ProxyError): void {
    if (stream.destroyed || stream.closed) return;
    const grpc = head.grpc;
    observation?.decided(decision);
    if (decision instanceof ProxyError) return this.answers.stream(stream, decision, grpc);
    const identity = decision.identity === null ? null : { name: PEER_IDENTITY_HEADER, value: decision.identity };
    const destination = decision.destination;
    if (destination.streamsOverH2(grpc)) {
      const overLimit = destination.admitStream(conn.peerIdentity, stream);
      if (overLimit !== null) return this.answers.stream(stream, overLimit, grpc);
      forwardStream(stream, h2ForwardHeaders(head.stream, decision.path, identity), destination.h2(), grpc, this.answers.stream, this.#direction === 'outbound' ? observation : null);
    } else {
      forwardStreamToHttp1(stream, destination.http1(conn.peerIdentity), head.method, decision.path, http1ForwardHeaders(head.stream, identity), this.answers.stream);
    }
  }

  /**
   * The `peer` label as the request arrives: inbound the caller's verified identity; outbound
   * unknown until a next-hop connection carries it (the forwarding code then tells the
   * observation the server identity that connection verified).
   */
  #initialPeer(conn: TrackedConnection): string | null | undefined {
    return this.#direction === 'inbound' ? conn.peerIdentity : undefined;
  }
}

function ignore(): void {
  // Stream errors (a reset by the client) are handled by the forwarding code through 'close'.
}
