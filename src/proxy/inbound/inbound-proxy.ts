import type * as http from 'node:http';
import type * as http2 from 'node:http2';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { resolveProxySettings, type ProxySettings } from '../config.ts';
import { ConnectionRegistry, type TrackedConnection } from '../connection-registry.ts';
import { isGrpcContentType, malformedRequest, missingHost, ProxyError, respondStreamWithError, respondWithError, tooManyHeaders } from '../http/errors.ts';
import { forwardHeaders, PEER_IDENTITY_HEADER, refusedHead } from '../http/headers.ts';
import { isConnectionDead, markConnectionDead } from '../http/client-error.ts';
import { forwardRequest, type ForwardingProxy, type NextHop } from '../http/forward-request.ts';
import { HttpServing } from '../http/http-serving.ts';
import { connectTunnelHop, type NextHopContext } from '../http/next-hop-socket.ts';
import { forwardStream } from '../h2/forward-stream.ts';
import { ExchangeObservation, StreamObservation } from '../request-observation.ts';
import { forwardStreamToHttp1 } from '../h2/forward-stream-to-http1.ts';
import { H2SessionPool } from '../h2/h2-session-pool.ts';
import { h2ForwardHeaders, http1ForwardHeaders, readStreamRequest } from '../h2/stream-headers.ts';
import { failUpgrade, forwardUpgrade, refusedUpgrade } from '../upgrade/forward-upgrade.ts';
import type { AuthorizationDecision, PathNormalizer, RequestAuthorizer, RequestFacts } from '../request-authorizer.ts';
import type { ServerTls } from '../tls-dependency.ts';
import type { ProxyObserver } from '../proxy-observer.ts';
import { createUpstreamPool } from '../upstream/upstream-pool.ts';
import { CallerLimits } from '../upstream/caller-limits.ts';
import { acceptPermissive } from './permissive-accept.ts';
import { listenOn } from '../listen.ts';
import { ConnectionGuard, DEFAULT_MAX_CONNECTIONS } from '../../net/connection-guard.ts';

/**
 * One inbound listener per app port. Transparent interception REDIRECTs each app port to its
 * own sidecar port, and Node cannot read SO_ORIGINAL_DST, so the listener a connection
 * arrived on is what tells the app port it was meant for. The sidecar's configuration
 * declares its ports with this same type, `InboundPort<PortProtocol>` (its `tcp` ports go to
 * the opaque TCP proxy instead).
 */
export interface InboundPort<Protocol extends string = 'http' | 'grpc' | 'http1'> {
  /** The sidecar port the app port's traffic is redirected to (0 = any free port, for tests). */
  readonly listenPort: number;
  /** The app's port on loopback. */
  readonly appPort: number;
  /**
   * `http`: callers may speak HTTP/1.1 or HTTP/2 (ALPN); the app is reached over HTTP/1.1,
   * except gRPC calls (content-type application/grpc), which only exist over HTTP/2 and go
   * h2c. `grpc`: the app speaks HTTP/2 (h2c on loopback) and every stream goes there.
   * `http1` is the former name of `http`, still accepted for callers written before HTTP/2.
   * (`tcp`, in the sidecar's configuration only: opaque bytes, served by OpaqueTcpProxy.)
   */
  readonly protocol: Protocol;
  /** PERMISSIVE: plaintext callers are accepted too, as `unauthenticated` (peer null). Default STRICT. */
  readonly permissive?: boolean;
}

/** The TLS layer as the inbound needs it (PERMISSIVE ports hand TLS callers to the same tls.Server as STRICT ones). */
export type InboundTls = ServerTls;

export interface InboundProxyOptions {
  readonly tls: InboundTls;
  readonly authorizer: RequestAuthorizer;
  readonly normalizer: PathNormalizer;
  readonly ports: readonly InboundPort[];
  /** Address the listeners bind; default 0.0.0.0 (callers come from other pods). */
  readonly listenHost?: string;
  /** Where the app listens; default 127.0.0.1. */
  readonly appHost?: string;
  readonly settings?: ProxySettings;
  readonly registry?: ConnectionRegistry;
  readonly observer?: ProxyObserver;
  /**
   * Cap and refusal counting of every inbound listener (src/net/connection-guard.ts); default:
   * DEFAULT_MAX_CONNECTIONS per port, refusals not counted. Setup deadlines come from `settings`.
   */
  readonly guard?: ConnectionGuard;
}

/** Offered on every mTLS listener: HTTP/2 first (multiplexing, gRPC), HTTP/1.1 for the rest. */
export const INBOUND_ALPN = ['h2', 'http/1.1'];

interface PortListener {
  readonly port: InboundPort;
  readonly front: net.Server;
  readonly serving: HttpServing;
  /** HTTP/1.1 to the app (Http1Pool). */
  readonly hop: NextHop;
  /** HTTP/2 (h2c) to the app: gRPC. */
  readonly h2: H2SessionPool;
  /** Per-caller share of the app (limits.maxInFlightPerCaller): the hop each caller forwards through. */
  readonly callers: CallerLimits;
  readonly appTarget: { label: string; host: string; port: number };
  readonly detachTls: () => void;
}

export class InboundProxy implements ForwardingProxy {
  readonly registry: ConnectionRegistry;
  readonly #opts: InboundProxyOptions;
  readonly #settings: ProxySettings;
  readonly #hopContext: NextHopContext;
  readonly #listeners: PortListener[] = [];
  readonly #tracked = new WeakMap<Duplex, TrackedConnection>();
  readonly #guard: ConnectionGuard;
  #draining = false;

  constructor(opts: InboundProxyOptions) {
    this.#opts = opts;
    this.#settings = opts.settings ?? resolveProxySettings();
    this.#guard = opts.guard ?? new ConnectionGuard({ listener: 'inbound', maxConnections: DEFAULT_MAX_CONNECTIONS });
    this.registry = opts.registry ?? new ConnectionRegistry();
    this.#hopContext = { settings: this.#settings, registry: this.registry, direction: 'inbound' };
    const appHost = opts.appHost ?? '127.0.0.1';
    for (const port of opts.ports) {
      const label = `app port ${port.appPort}`;
      const appTarget = { label, host: appHost, port: port.appPort };
      const pool = createUpstreamPool(appTarget, this.#hopContext);
      // The listener's handlers need the listener; they only run once it exists.
      let l!: PortListener;
      const serving = new HttpServing(this.#settings, {
        request: (req, res) => this.#onRequest(req, res, l),
        upgrade: (req, socket, head) => this.#onUpgrade(req, socket, head, l),
        refused: (code) => this.#opts.observer?.refused?.('inbound', code),
      });
      const onSecure = (socket: tls.TLSSocket): void => this.#onSecure(socket, l);
      const { front, detachTls } = port.permissive
        ? this.#permissiveFront(serving, onSecure, (socket, protocol) => this.#serve(socket, null, null, protocol, l))
        : this.#strictFront(serving, onSecure);
      l = { port, front, serving, hop: { pool, label }, h2: new H2SessionPool(appTarget, this.#hopContext), callers: new CallerLimits(pool, label, this.#settings.limits.maxInFlightPerCaller), appTarget, detachTls };
      this.#listeners.push(l);
    }
  }

  /** Binds every listener; resolves once all are listening. */
  async start(): Promise<void> {
    const host = this.#opts.listenHost ?? '0.0.0.0';
    await Promise.all(this.#listeners.map((l) => listenOn(l.front, l.port.listenPort, host)));
  }

  /** The bound ports (listenPort resolved when 0 was asked). */
  boundPorts(): { listenPort: number; appPort: number }[] {
    return this.#listeners.map((l) => ({ listenPort: (l.front.address() as net.AddressInfo).port, appPort: l.port.appPort }));
  }

  get draining(): boolean {
    return this.#draining;
  }

  /** Stop accepting, finish in-flight requests and streams (up to timeouts.drainMs), close the rest. Returns connections cut. */
  async drain(): Promise<number> {
    this.#draining = true;
    const cut = await Promise.all(this.#listeners.map((l) => l.serving.drain(l.front, this.#settings.timeouts.drainMs)));
    for (const l of this.#listeners) {
      l.detachTls();
      l.h2.destroy();
      await l.hop.pool.destroy();
    }
    return cut.reduce((a, b) => a + b, 0);
  }

  closeAfterResponse(): boolean {
    return this.#draining;
  }

  fail(res: http.ServerResponse, err: ProxyError): void {
    this.#opts.observer?.refused?.('inbound', err.code);
    // The request's socket, not the response's: a response queued behind another has none yet.
    if (err.closeConnection) markConnectionDead(res.req.socket);
    respondWithError(res, err);
  }

  readonly #failStream = (stream: http2.ServerHttp2Stream, err: ProxyError, grpc: boolean): void => {
    this.#opts.observer?.refused?.('inbound', err.code);
    respondStreamWithError(stream, err, grpc);
  };

  readonly #failUpgrade = (socket: Duplex, err: ProxyError): void => {
    this.#opts.observer?.refused?.('inbound', err.code);
    failUpgrade(socket, err);
  };

  /**
   * STRICT: the port's tls.Server listens itself; a plaintext caller fails the handshake
   * (counted as plaintext_on_strict by the observer). Capped by the guard.
   */
  #strictFront(serving: HttpServing, onSecure: (socket: tls.TLSSocket) => void): { front: net.Server; detachTls: () => void } {
    const { server: front, detachTls } = this.#tlsServer(onSecure);
    this.#guard.protect(front);
    front.on('connection', (raw: net.Socket) => serving.accept(raw));
    return { front, detachTls };
  }

  /**
   * PERMISSIVE: a net.Server that looks at the first bytes (permissive-accept.ts): TLS -> the
   * same tls.Server as a STRICT port (not listening, fed the socket); else plaintext, peer null.
   * The first bytes must come within the TLS handshake timeout; a TLS caller then has that
   * long again for its handshake, a plaintext caller the request-head timeout.
   */
  #permissiveFront(
    serving: HttpServing,
    onSecure: (socket: tls.TLSSocket) => void,
    onPlaintext: (socket: net.Socket, protocol: 'h2' | 'http1') => void,
  ): { front: net.Server; detachTls: () => void } {
    const { server: tlsServer, detachTls } = this.#tlsServer(onSecure);
    const firstBytesMs = this.#settings.timeouts.tlsHandshakeMs;
    const front = net.createServer({ noDelay: true }, (raw) => {
      serving.accept(raw);
      const detected = this.#guard.deadline(raw, firstBytesMs);
      acceptPermissive(raw, firstBytesMs, { tls: tlsServer, plaintext: onPlaintext, detected });
    });
    this.#guard.protect(front);
    return { front, detachTls };
  }

  /**
   * The mTLS server of one port: TLS 1.3, client SVID required (verified in onSecure, and by
   * MeshTls's fail-closed gate), ALPN h2 then http/1.1. A handshake that fails or does not end
   * within timeouts.tlsHandshakeMs is closed by the guard (node only reports the timeout).
   */
  #tlsServer(onSecure: (socket: tls.TLSSocket) => void): { server: tls.Server; detachTls: () => void } {
    const server = tls.createServer({
      ...this.#opts.tls.serverOptions({ ALPNProtocols: INBOUND_ALPN }),
      handshakeTimeout: this.#settings.timeouts.tlsHandshakeMs,
      noDelay: true,
    });
    const detachTls = this.#opts.tls.attachServer(server);
    this.#guard.closeFailedHandshakes(server);
    server.on('tlsClientError', (err) => this.#opts.observer?.handshakeFailed?.('inbound', err));
    server.on('secureConnection', onSecure);
    return { server, detachTls };
  }

  #onSecure(socket: tls.TLSSocket, l: PortListener): void {
    let peer: string;
    try {
      peer = this.#opts.tls.verifyClient(socket).spiffeId.id;
    } catch (err) {
      this.#opts.observer?.handshakeFailed?.('inbound', err);
      socket.destroy();
      return;
    }
    this.#serve(socket, peer, socket.getProtocol() ?? null, socket.alpnProtocol === 'h2' ? 'h2' : 'http1', l);
  }

  #serve(socket: net.Socket, peer: string | null, tlsVersion: string | null, protocol: 'h2' | 'http1', l: PortListener): void {
    const conn = this.registry.track('inbound', 'accepted', socket);
    conn.peerIdentity = peer;
    conn.tlsVersion = tlsVersion;
    if (protocol === 'h2') {
      l.serving.serveH2(socket, (stream, _headers, _flags, raw) => this.#onStream(stream, raw, conn, l));
    } else {
      this.#tracked.set(socket, conn);
      l.serving.serveHttp1(socket);
    }
  }

  /**
   * Path normalization then policy, the same for HTTP/1.1 requests, HTTP/2 streams and
   * Upgrade requests: the normalized path and the query to forward, or the refusal to send.
   */
  #authorize(conn: TrackedConnection, l: PortListener, method: string, target: string, contentType: string | undefined): { path: string; query: string; route: string | null; wouldDeny: boolean } | ProxyError {
    const q = target.indexOf('?');
    const normalized = this.#opts.normalizer.normalize(q === -1 ? target : target.slice(0, q));
    if (!normalized.ok) return new ProxyError('MESHLET_BAD_PATH', `request path refused: ${normalized.reason}`);
    const facts: RequestFacts = { peer: conn.peerIdentity, port: l.port.appPort, method, path: normalized.path, grpc: grpcFacts(contentType, normalized.path) };
    let decision: AuthorizationDecision;
    try {
      decision = this.#opts.authorizer.authorize(facts);
    } catch (err) {
      return new ProxyError('MESHLET_INTERNAL', 'the policy could not decide', { cause: err });
    }
    if (decision.decision !== 'allow') {
      return new ProxyError('MESHLET_DENIED', 'request denied by policy', { details: { route: decision.route, reason: decision.reason } });
    }
    return { path: normalized.path, query: q === -1 ? '' : target.slice(q), route: decision.route, wouldDeny: (decision as { wouldDeny?: boolean }).wouldDeny === true };
  }

  #onRequest(req: http.IncomingMessage, res: http.ServerResponse, l: PortListener): void {
    const conn = this.#tracked.get(req.socket);
    if (conn === undefined) {
      // Verification failed after the parser already had bytes: never forward.
      req.socket.destroy();
      return;
    }
    // Pipelined behind a refusal that closes the connection: dropped, never answered (node
    // closes the socket after the refusal's response).
    if (isConnectionDead(req.socket)) return;
    conn.requests++;
    const raw = req.rawHeaders;
    if (raw.length > this.#settings.limits.maxHeaderCount * 2) {
      return this.fail(res, tooManyHeaders(this.#settings.limits.maxHeaderCount, true));
    }
    const head = forwardHeaders(raw, PEER_IDENTITY_HEADER);
    const malformed = refusedHead(head, req.httpVersionMinor);
    if (malformed !== null) return this.fail(res, malformed);
    if (head.host === '' && req.httpVersionMinor === 1) return this.fail(res, missingHost());
    const method = req.method ?? 'GET';
    const allowed = this.#authorize(conn, l, method, req.url ?? '/', head.contentType);
    const finished = this.#opts.observer?.requestFinished;
    if (finished !== undefined) new ExchangeObservation(res, conn, finished, 'inbound', conn.peerIdentity, routeOf(allowed), method, authzOf(allowed));
    if (allowed instanceof ProxyError) return this.fail(res, allowed);
    if (conn.peerIdentity !== null) head.headers.push(PEER_IDENTITY_HEADER, conn.peerIdentity);
    forwardRequest(req, res, l.callers.hop(conn.peerIdentity), allowed.path + allowed.query, head, this);
  }

  #onUpgrade(req: http.IncomingMessage, socket: Duplex, headBytes: Buffer, l: PortListener): void {
    const conn = this.#tracked.get(req.socket);
    if (conn === undefined) {
      socket.destroy();
      return;
    }
    if (isConnectionDead(socket)) {
      // Pipelined behind a refusal whose response is already written: flush it, then close.
      socket.end();
      return;
    }
    conn.requests++;
    const upgrade = req.headers.upgrade ?? '';
    if (refusedUpgrade(upgrade)) {
      return this.#failUpgrade(socket, new ProxyError('MESHLET_BAD_REQUEST', 'Upgrade: h2c is refused (an h2c tunnel would carry requests the policy never sees)', { closeConnection: true }));
    }
    if (req.rawHeaders.length > this.#settings.limits.maxHeaderCount * 2) {
      return this.#failUpgrade(socket, tooManyHeaders(this.#settings.limits.maxHeaderCount, true));
    }
    const head = forwardHeaders(req.rawHeaders, PEER_IDENTITY_HEADER);
    const malformed = refusedHead(head, req.httpVersionMinor);
    if (malformed !== null) return this.#failUpgrade(socket, malformed);
    if (head.host === '' && req.httpVersionMinor === 1) return this.#failUpgrade(socket, missingHost());
    const method = req.method ?? 'GET';
    const allowed = this.#authorize(conn, l, method, req.url ?? '/', head.contentType);
    if (allowed instanceof ProxyError) return this.#failUpgrade(socket, allowed);
    if (conn.peerIdentity !== null) head.headers.push(PEER_IDENTITY_HEADER, conn.peerIdentity);
    forwardUpgrade(socket, headBytes, { method, path: allowed.path + allowed.query, headers: head.headers, upgrade }, () => connectTunnelHop(l.appTarget, this.#hopContext), this.#failUpgrade);
  }

  #onStream(stream: http2.ServerHttp2Stream, raw: string[], conn: TrackedConnection, l: PortListener): void {
    stream.on('error', ignore);
    conn.requests++;
    const head = readStreamRequest(raw, PEER_IDENTITY_HEADER);
    const grpc = isGrpcContentType(head.contentType);
    if (head.fieldCount > this.#settings.limits.maxHeaderCount) {
      return this.#failStream(stream, tooManyHeaders(this.#settings.limits.maxHeaderCount, false), grpc);
    }
    if (head.malformed !== null) {
      return this.#failStream(stream, malformedRequest(head.malformed, false), grpc);
    }
    if (head.method === 'CONNECT' || head.path === '') {
      return this.#failStream(stream, new ProxyError('MESHLET_BAD_REQUEST', 'CONNECT (and requests without :path) are not proxied'), grpc);
    }
    const allowed = this.#authorize(conn, l, head.method, head.path, head.contentType);
    const finished = this.#opts.observer?.requestFinished;
    if (finished !== undefined) new StreamObservation(stream, finished, 'inbound', conn.peerIdentity, routeOf(allowed), head.method, grpc, authzOf(allowed));
    if (allowed instanceof ProxyError) return this.#failStream(stream, allowed, grpc);
    const identity = conn.peerIdentity === null ? null : { name: PEER_IDENTITY_HEADER, value: conn.peerIdentity };
    if (grpc || l.port.protocol === 'grpc') {
      const overLimit = l.callers.admitStream(conn.peerIdentity, stream);
      if (overLimit !== null) return this.#failStream(stream, overLimit, grpc);
      forwardStream(stream, h2ForwardHeaders(head, allowed.path + allowed.query, identity), l.h2, grpc, this.#failStream);
    } else {
      forwardStreamToHttp1(stream, l.callers.hop(conn.peerIdentity), head.method, allowed.path + allowed.query, http1ForwardHeaders(head, identity), this.#failStream);
    }
  }
}

type Authorized = { route: string | null; wouldDeny: boolean } | ProxyError;

/**
 * The `route` label: the deciding route, null when a server's default decided — for a denial
 * as for an allow, so both are "unmatched", as in meshlet_authz_decisions_total — and
 * undefined ("none") when the request was refused before the policy ran.
 */
function routeOf(allowed: Authorized): string | null | undefined {
  if (!(allowed instanceof ProxyError)) return allowed.route;
  return allowed.code === 'MESHLET_DENIED' ? (allowed.details?.route ?? null) : undefined;
}

function authzOf(allowed: Authorized): 'allow' | 'deny' | 'audit_would_deny' | 'none' {
  if (allowed instanceof ProxyError) return allowed.code === 'MESHLET_DENIED' ? 'deny' : 'none';
  return allowed.wouldDeny ? 'audit_would_deny' : 'allow';
}

function ignore(): void {
  // Stream errors (a reset by the client) are handled by the forwarding code through 'close'.
}

/** gRPC over HTTP/2 names `/<package.Service>/<Method>`; undefined for anything else. */
function grpcFacts(contentType: string | undefined, path: string): RequestFacts['grpc'] {
  if (!isGrpcContentType(contentType)) return undefined;
  const slash = path.indexOf('/', 1);
  if (slash === -1 || path.indexOf('/', slash + 1) !== -1) return undefined;
  return { service: path.slice(1, slash), method: path.slice(slash + 1) };
}
