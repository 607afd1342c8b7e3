import type * as http from 'node:http';
import type * as http2 from 'node:http2';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { resolveProxySettings, type ProxySettings } from '../config.ts';
import { ConnectionRegistry, type TrackedConnection } from '../connection-registry.ts';
import { isGrpcContentType, malformedRequest, missingHost, ProxyError, respondStreamWithError, respondWithError, tooManyHeaders } from '../http/errors.ts';
import { forwardHeaders, PEER_IDENTITY_HEADER, quoted, refusedHead, type ForwardedHead } from '../http/headers.ts';
import { isConnectionDead, markConnectionDead } from '../http/client-error.ts';
import { forwardRequest, type ForwardingProxy, type NextHop } from '../http/forward-request.ts';
import { HttpServing } from '../http/http-serving.ts';
import { connectTunnelHop, type NextHopContext, type NextHopTarget } from '../http/next-hop-socket.ts';
import { detectH2c } from '../h2/detect-h2c.ts';
import { forwardStream } from '../h2/forward-stream.ts';
import { ExchangeObservation, StreamObservation } from '../request-observation.ts';
import { H2SessionPool } from '../h2/h2-session-pool.ts';
import { h2ForwardHeaders, readStreamRequest } from '../h2/stream-headers.ts';
import { failUpgrade, forwardUpgrade, refusedUpgrade } from '../upgrade/forward-upgrade.ts';
import type { ClientTls } from '../tls-dependency.ts';
import type { ProxyObserver } from '../proxy-observer.ts';
import { createUpstreamPool } from '../upstream/upstream-pool.ts';
import { DestinationTable, type DestinationConfig, type MeshDestination, type Route } from './destination-table.ts';
import { listenOn } from '../listen.ts';
import { ConnectionGuard, DEFAULT_MAX_CONNECTIONS } from '../../net/connection-guard.ts';

/**
 * The app's side: a plain listener its outbound traffic reaches, either by transparent
 * redirect (origin-form request, routed by Host / :authority) or because the app uses it as
 * HTTP_PROXY (absolute-form `GET http://host:port/path`, routed by the URI's authority).
 * The app may speak HTTP/1.1 or h2c (HTTP/2 with prior knowledge: what gRPC clients do to a
 * plaintext target); the first bytes of a connection say which.
 *
 * Toward a mesh destination: HTTP/1.1 requests go over a keep-alive pool of mTLS connections
 * (ALPN http/1.1); HTTP/2 streams over ONE multiplexed h2 mTLS session per destination (ALPN
 * h2) — gRPC needs HTTP/2 end to end (trailers). Upgrade requests get a connection of their own.
 */
export interface OutboundProxyOptions {
  readonly tls: ClientTls;
  readonly destinations: DestinationConfig;
  /** Default 127.0.0.1:15001 — the app's traffic only (the sidecar's own uid is not redirected). */
  readonly listenHost?: string;
  readonly listenPort?: number;
  /**
   * A second loopback address on the same port, for the app's IPv6 traffic: ip6tables
   * REDIRECTs a locally generated connection to [::1]:port. Never `::` — that would make the
   * outbound proxy a relay open to the network in explicit mode. Skipped (resolved false by
   * start()) when the address does not exist (IPv6 disabled on lo).
   */
  readonly ipv6LoopbackHost?: string;
  readonly settings?: ProxySettings;
  readonly registry?: ConnectionRegistry;
  readonly observer?: ProxyObserver;
  /**
   * Cap and refusal counting of the listener (src/net/connection-guard.ts); default:
   * DEFAULT_MAX_CONNECTIONS, refusals not counted. The first bytes must come within
   * timeouts.requestHeadersMs.
   */
  readonly guard?: ConnectionGuard;
}

export const DEFAULT_OUTBOUND_PORT = 15001;

/** The ways one destination can be reached, made on first use. */
interface DestinationHops {
  /** For the HTTP/2 session (ALPN h2 on mTLS). */
  readonly h2Target: NextHopTarget;
  http1: NextHop | null;
  h2: H2SessionPool | null;
  /** For the HTTP/1.1 pool and Upgrade tunnels (ALPN http/1.1 on mTLS). */
  readonly http1Target: NextHopTarget;
}

export class OutboundProxy implements ForwardingProxy {
  readonly registry: ConnectionRegistry;
  readonly #opts: OutboundProxyOptions;
  readonly #settings: ProxySettings;
  readonly #hopContext: NextHopContext;
  readonly #table: DestinationTable;
  /** Keyed by `mesh:host:port` / `plain:host:port`. */
  readonly #hops = new Map<string, DestinationHops>();
  readonly #front: net.Server;
  /** The [::1] twin of #front (ipv6LoopbackHost), same handler, same guard. */
  readonly #front6: net.Server | null;
  readonly #serving: HttpServing;
  readonly #tracked = new WeakMap<Duplex, TrackedConnection>();
  readonly #guard: ConnectionGuard;
  #draining = false;

  constructor(opts: OutboundProxyOptions) {
    this.#opts = opts;
    this.#settings = opts.settings ?? resolveProxySettings();
    this.registry = opts.registry ?? new ConnectionRegistry();
    this.#hopContext = { settings: this.#settings, registry: this.registry, direction: 'outbound' };
    this.#table = new DestinationTable(opts.destinations);
    this.#serving = new HttpServing(this.#settings, {
      request: (req, res) => this.#onRequest(req, res),
      upgrade: (req, socket, head) => this.#onUpgrade(req, socket, head),
      refused: (code) => this.#opts.observer?.refused?.('outbound', code),
    });
    this.#guard = opts.guard ?? new ConnectionGuard({ listener: 'outbound', maxConnections: DEFAULT_MAX_CONNECTIONS });
    this.#front = this.#guard.protect(net.createServer({ noDelay: true }, (socket) => this.#onConnection(socket)));
    this.#front6 = opts.ipv6LoopbackHost === undefined ? null : this.#guard.protect(net.createServer({ noDelay: true }, (socket) => this.#onConnection(socket)));
  }

  /** Binds the listener (and its IPv6 loopback twin when asked; false when that address does not exist). */
  async start(): Promise<{ ipv6Loopback: boolean }> {
    await listenOn(this.#front, this.#opts.listenPort ?? DEFAULT_OUTBOUND_PORT, this.#opts.listenHost ?? '127.0.0.1');
    if (this.#front6 === null) return { ipv6Loopback: false };
    try {
      await listenOn(this.#front6, this.boundPort(), this.#opts.ipv6LoopbackHost!);
      return { ipv6Loopback: true };
    } catch (err) {
      // No ::1 (IPv6 disabled on lo): no IPv6 connection can be redirected here either.
      if ((err as NodeJS.ErrnoException).code === 'EADDRNOTAVAIL' || (err as NodeJS.ErrnoException).code === 'EAFNOSUPPORT') return { ipv6Loopback: false };
      this.#front.close();
      throw err;
    }
  }

  boundPort(): number {
    return (this.#front.address() as net.AddressInfo).port;
  }

  get draining(): boolean {
    return this.#draining;
  }

  async drain(): Promise<number> {
    this.#draining = true;
    if (this.#front6?.listening) this.#front6.close();
    const cut = await this.#serving.drain(this.#front, this.#settings.timeouts.drainMs);
    const pools: Promise<void>[] = [];
    for (const hops of this.#hops.values()) {
      hops.h2?.destroy();
      if (hops.http1 !== null) pools.push(hops.http1.pool.destroy());
    }
    await Promise.all(pools);
    return cut;
  }

  closeAfterResponse(): boolean {
    return this.#draining;
  }

  fail(res: http.ServerResponse, err: ProxyError): void {
    this.#opts.observer?.refused?.('outbound', err.code);
    // The request's socket, not the response's: a response queued behind another has none yet.
    if (err.closeConnection) markConnectionDead(res.req.socket);
    respondWithError(res, err);
  }

  readonly #failStream = (stream: http2.ServerHttp2Stream, err: ProxyError, grpc: boolean): void => {
    this.#opts.observer?.refused?.('outbound', err.code);
    respondStreamWithError(stream, err, grpc);
  };

  readonly #handshakeFailed = (err: Error): void => {
    this.#opts.observer?.handshakeFailed?.('outbound', err);
  };

  readonly #failUpgrade = (socket: Duplex, err: ProxyError): void => {
    this.#opts.observer?.refused?.('outbound', err.code);
    failUpgrade(socket, err);
  };

  #onConnection(socket: net.Socket): void {
    this.#serving.accept(socket);
    const conn = this.registry.track('outbound', 'accepted', socket);
    socket.on('error', () => socket.destroy());
    // A silent connection is closed by the guard; bytes end its deadline (then the HTTP/1.1 head
    // timeout or the HTTP/2 idle timeout applies).
    const detected = this.#guard.deadline(socket, this.#settings.timeouts.requestHeadersMs);
    void detectH2c(socket, this.#settings.timeouts.requestHeadersMs).then((protocol) => {
      if (socket.destroyed) return;
      if (socket.bytesRead > 0) detected();
      if (protocol === 'h2c') {
        this.#serving.serveH2(socket, (stream, _headers, _flags, raw) => this.#onStream(stream, raw, conn));
      } else {
        this.#tracked.set(socket, conn);
        this.#serving.serveHttp1(socket);
      }
    });
  }

  /**
   * The authority and origin-form target of an HTTP/1.x request, or the refusal. Framing and
   * Host doubts (refusedHead) are refused first. In absolute-form the URI's authority routes, so
   * a Host naming anything else is a 400 (the next hop and the app would read the Host);
   * without a Host (HTTP/1.0) the URI's authority is sent as Host (RFC 9112 §3.2.2).
   */
  #target(req: http.IncomingMessage, head: ForwardedHead): { authority: string; target: string } | ProxyError {
    const malformed = refusedHead(head, req.httpVersionMinor);
    if (malformed !== null) return malformed;
    const host = head.host;
    if (host === '' && req.httpVersionMinor === 1) return missingHost();
    let target = req.url ?? '/';
    let authority = host;
    if (target.charCodeAt(0) !== 47 /* '/' */) {
      // HTTP_PROXY mode: absolute-form. Only http:// — TLS from the app would be opaque to us.
      if (!target.startsWith('http://')) {
        return new ProxyError('MESHLET_BAD_REQUEST', `unsupported request target ${JSON.stringify(target.slice(0, 100))}: only origin-form or http:// absolute-form`);
      }
      const slash = target.indexOf('/', 7);
      authority = slash === -1 ? target.slice(7) : target.slice(7, slash);
      target = slash === -1 ? '/' : target.slice(slash);
      if (host === '') {
        if (authority !== '') head.headers.push('host', authority);
      } else if (!sameHttpAuthority(host, authority)) {
        return malformedRequest(`Host ${quoted(host)} disagrees with the absolute-form target's authority ${quoted(authority)}; RFC 9112 §3.2.2`, true);
      }
    }
    if (authority === '') {
      return new ProxyError('MESHLET_MISSING_HOST', 'the request names no destination (no Host header, no absolute URI)');
    }
    return { authority, target };
  }

  #route(authority: string): Route | ProxyError {
    return (
      this.#table.resolve(authority) ??
      new ProxyError('MESHLET_UNKNOWN_DESTINATION', `${authority} is not a known mesh destination nor a configured plaintext destination; refused (the sidecar never sends plaintext on its own)`)
    );
  }

  #onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    // Pipelined behind a refusal that closes the connection: dropped, never answered (node
    // closes the socket after the refusal's response).
    if (isConnectionDead(req.socket)) return;
    const conn = this.#tracked.get(req.socket);
    if (conn !== undefined) conn.requests++;
    const raw = req.rawHeaders;
    if (raw.length > this.#settings.limits.maxHeaderCount * 2) {
      return this.fail(res, tooManyHeaders(this.#settings.limits.maxHeaderCount, true));
    }
    // The identity header is only ever set by the inbound sidecar; an app cannot pass one along.
    const head = forwardHeaders(raw, PEER_IDENTITY_HEADER);
    const finished = this.#opts.observer?.requestFinished;
    // The peer is the server: unknown until a next-hop connection (and its verified SVID) carries the request.
    const observation = finished !== undefined && conn !== undefined ? new ExchangeObservation(res, conn, finished, 'outbound', undefined, undefined, req.method ?? 'GET', 'none') : null;
    const t = this.#target(req, head);
    if (t instanceof ProxyError) return this.fail(res, t);
    const route = this.#route(t.authority);
    if (route instanceof ProxyError) return this.fail(res, route);
    forwardRequest(req, res, this.#http1Hop(route), t.target, head, this, observation);
  }

  #onUpgrade(req: http.IncomingMessage, socket: Duplex, headBytes: Buffer): void {
    if (isConnectionDead(socket)) {
      // Pipelined behind a refusal whose response is already written: flush it, then close.
      socket.end();
      return;
    }
    const conn = this.#tracked.get(req.socket);
    if (conn !== undefined) conn.requests++;
    const upgrade = req.headers.upgrade ?? '';
    if (refusedUpgrade(upgrade)) {
      return this.#failUpgrade(socket, new ProxyError('MESHLET_BAD_REQUEST', 'Upgrade: h2c is not proxied; speak HTTP/2 with prior knowledge instead', { closeConnection: true }));
    }
    if (req.rawHeaders.length > this.#settings.limits.maxHeaderCount * 2) {
      return this.#failUpgrade(socket, tooManyHeaders(this.#settings.limits.maxHeaderCount, true));
    }
    const head = forwardHeaders(req.rawHeaders, PEER_IDENTITY_HEADER);
    const t = this.#target(req, head);
    if (t instanceof ProxyError) return this.#failUpgrade(socket, t);
    const route = this.#route(t.authority);
    if (route instanceof ProxyError) return this.#failUpgrade(socket, route);
    const target = this.#hopsFor(route).http1Target;
    forwardUpgrade(socket, headBytes, { method: req.method ?? 'GET', path: t.target, headers: head.headers, upgrade }, () => connectTunnelHop(target, this.#hopContext), this.#failUpgrade);
  }

  #onStream(stream: http2.ServerHttp2Stream, raw: string[], conn: TrackedConnection): void {
    stream.on('error', ignore);
    conn.requests++;
    const head = readStreamRequest(raw, PEER_IDENTITY_HEADER);
    const grpc = isGrpcContentType(head.contentType);
    const finished = this.#opts.observer?.requestFinished;
    const observation = finished !== undefined ? new StreamObservation(stream, finished, 'outbound', undefined, undefined, head.method, grpc, 'none') : null;
    if (head.fieldCount > this.#settings.limits.maxHeaderCount) {
      return this.#failStream(stream, tooManyHeaders(this.#settings.limits.maxHeaderCount, false), grpc);
    }
    if (head.malformed !== null) {
      return this.#failStream(stream, malformedRequest(head.malformed, false), grpc);
    }
    if (head.method === 'CONNECT' || head.path === '') {
      return this.#failStream(stream, new ProxyError('MESHLET_BAD_REQUEST', 'CONNECT (and requests without :path) are not proxied'), grpc);
    }
    if (head.authority === '') {
      return this.#failStream(stream, new ProxyError('MESHLET_MISSING_HOST', 'the stream names no destination (no :authority, no Host)'), grpc);
    }
    const route = this.#route(head.authority);
    if (route instanceof ProxyError) return this.#failStream(stream, route, grpc);
    forwardStream(stream, h2ForwardHeaders(head, head.path, null), this.#h2Hop(route), grpc, this.#failStream, observation);
  }

  #hopsFor(route: Route): DestinationHops {
    const key = `${route.kind}:${route.host}:${route.port}`;
    let hops = this.#hops.get(key);
    if (hops === undefined) {
      hops = route.kind === 'mesh' ? this.#meshHops(route.destination) : this.#plainHops(route.host, route.port);
      this.#hops.set(key, hops);
    }
    return hops;
  }

  #meshHops(d: MeshDestination): DestinationHops {
    const who = d.expected.spiffeId ?? `trust domain ${d.expected.trustDomains?.join('|')}`;
    const label = `peer sidecar for ${d.host}:${d.port} (${who})`;
    const tls = this.#opts.tls;
    // Asked per NEW connection, so a rotated SVID is used from the next connection on.
    const target = (alpn: string): NextHopTarget => ({
      label,
      host: d.address.host,
      port: d.address.port,
      tlsOptions: () => tls.connectOptions(d.expected, { ALPNProtocols: [alpn] }),
      ...(tls.verifyServer ? { peerIdentity: (s) => tls.verifyServer!(s).spiffeId.id } : {}),
      handshakeFailed: this.#handshakeFailed,
    });
    return { h2Target: target('h2'), http1Target: target('http/1.1'), http1: null, h2: null };
  }

  #plainHops(host: string, port: number): DestinationHops {
    const target: NextHopTarget = { label: `plaintext destination ${host}:${port}`, host, port };
    return { h2Target: target, http1Target: target, http1: null, h2: null };
  }

  /** One HTTP/1.1 pool per destination (HTTP/1.1; mTLS with ALPN http/1.1 toward mesh peers). */
  #http1Hop(route: Route): NextHop {
    const hops = this.#hopsFor(route);
    if (hops.http1 === null) {
      const t = hops.http1Target;
      const pool = createUpstreamPool(t, this.#hopContext);
      hops.http1 = { pool, label: `${t.label}${t.tlsOptions ? ` at ${t.host}:${t.port}` : ''}` };
    }
    return hops.http1;
  }

  /** One multiplexed HTTP/2 session per destination (h2 over mTLS toward mesh peers, h2c to plaintext ones). */
  #h2Hop(route: Route): H2SessionPool {
    const hops = this.#hopsFor(route);
    return (hops.h2 ??= new H2SessionPool(hops.h2Target, this.#hopContext));
  }
}

function ignore(): void {
  // Stream errors (a reset by the app) are handled by the forwarding code through 'close'.
}

/** Host and an http:// URI's authority name the same origin: case-insensitive, `:80` implied (RFC 9110 §4.2.3). */
function sameHttpAuthority(a: string, b: string): boolean {
  if (a.length === b.length) return a.toLowerCase() === b.toLowerCase();
  const [shorter, longer] = a.length < b.length ? [a, b] : [b, a];
  return longer.length === shorter.length + 3 && longer.endsWith(':80') && longer.slice(0, -3).toLowerCase() === shorter.toLowerCase();
}
