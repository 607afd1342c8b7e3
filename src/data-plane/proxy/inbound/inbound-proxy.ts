import * as net from 'node:net';
import type * as tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { resolveProxySettings, type ProxySettings } from '../config.ts';
import { ConnectionRegistry, type TrackedConnection } from '../connection-registry.ts';
import { HttpServing } from '../http/http-serving.ts';
import type { NextHopContext } from '../http/next-hop-socket.ts';
import { RequestPipeline } from '../pipeline/request-pipeline.ts';
import type { PathNormalizer, RequestAuthorizer } from '../request-authorizer.ts';
import type { ServerTls } from '../tls-dependency.ts';
import type { ProxyObserver } from '../proxy-observer.ts';
import { AppPort } from './app-port.ts';
import { AuthorizeStep } from './authorize.ts';
import { acceptPermissive } from './permissive-accept.ts';
import { createMtlsServer } from './mtls-server.ts';
import { detectProtocol } from '../detect/first-bytes.ts';
import { authorizeAndSplice } from '../tcp/app-splice.ts';
import type { DecidedConnections } from '../tcp/decided-connections.ts';
import type { ConnectionAuthorizer } from '../tcp/connection-authorizer.ts';
import type { TcpObserver } from '../tcp/tcp-refusals.ts';
import { listenOn } from '../../../common/net/listen.ts';
import { ConnectionGuard, DEFAULT_MAX_CONNECTIONS } from '../../../common/net/connection-guard.ts';

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
   * Cap and refusal counting of every inbound listener (src/common/net/connection-guard.ts); default:
   * DEFAULT_MAX_CONNECTIONS per port, refusals not counted. Setup deadlines come from `settings`.
   */
  readonly guard?: ConnectionGuard;
  /**
   * The app's own TLS on an HTTP port: an mTLS caller that negotiated no ALPN (meshlet's outbound
   * sends h2 or http/1.1 for HTTP, none for what it carries opaquely to a meshed destination)
   * and whose first bytes inside are a TLS ClientHello is authorized once for the connection
   * (caller and port) and spliced to the app (tcp/app-splice.ts) — the app terminates its own
   * TLS. Nothing else is ever spliced on an HTTP port: bytes that are not a ClientHello, or
   * silence, stay HTTP, so no prefix an app's HTTP parser might skip (a CRLF) can carry a
   * request past header sanitizing and per-request policy. Absent: every such connection is HTTP.
   */
  readonly opaque?: { readonly authorizer: ConnectionAuthorizer; readonly observer?: TcpObserver; readonly decided?: DecidedConnections };
}

/** Offered on every mTLS listener: HTTP/2 first (multiplexing, gRPC), HTTP/1.1 for the rest. */
export const INBOUND_ALPN = ['h2', 'http/1.1'];

interface PortListener {
  readonly port: InboundPort;
  readonly front: net.Server;
  readonly serving: HttpServing;
  /** The request pipeline of this port (its deciding step is this port's policy). */
  readonly pipeline: RequestPipeline;
  /** The app behind the port. */
  readonly app: AppPort;
  readonly detachTls: () => void;
}

/**
 * The inbound arrangement of the pipeline (docs/architecture.md): accept (guarded listener) →
 * detect (PERMISSIVE: TLS or plaintext) → mTLS (client SVID verified) → protocol (ALPN:
 * HTTP/2 or HTTP/1.1) → the port's RequestPipeline: head → observe → authorize → forward to
 * the app on loopback.
 */
export class InboundProxy {
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
      const app = new AppPort({ label: `app port ${port.appPort}`, host: appHost, port: port.appPort }, port.protocol === 'grpc', this.#hopContext);
      const pipeline = new RequestPipeline({
        direction: 'inbound',
        settings: this.#settings,
        hopContext: this.#hopContext,
        observer: opts.observer,
        decide: new AuthorizeStep(port.appPort, opts.authorizer, opts.normalizer, app),
        draining: () => this.#draining,
      });
      const serving = new HttpServing(this.#settings, {
        request: (req, res) => pipeline.request(req, res, this.#tracked.get(req.socket)),
        upgrade: (req, socket, head) => pipeline.upgrade(req, socket, head, this.#tracked.get(req.socket)),
        refused: pipeline.answers.counted,
      });
      // The listener's handlers need the listener; they only run once it exists.
      let l!: PortListener;
      const onSecure = (socket: tls.TLSSocket, peer: string): void => {
        const alpn = socket.alpnProtocol;
        if (alpn === 'h2') return this.#serve(socket, peer, socket.getProtocol() ?? null, 'h2', l);
        if (alpn === 'http/1.1' || this.#opts.opaque === undefined) return this.#serve(socket, peer, socket.getProtocol() ?? null, 'http1', l);
        this.#detectInside(socket, peer, l);
      };
      const { front, detachTls } = port.permissive
        ? this.#permissiveFront(serving, onSecure, (socket, protocol) => this.#serve(socket, null, null, protocol, l))
        : this.#strictFront(serving, onSecure);
      l = { port, front, serving, pipeline, app, detachTls };
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
    for (const l of this.#listeners) l.detachTls();
    await Promise.all(this.#listeners.map((l) => l.app.close()));
    return cut.reduce((a, b) => a + b, 0);
  }

  /**
   * STRICT: the port's tls.Server listens itself; a plaintext caller fails the handshake
   * (counted as plaintext_on_strict by the observer). Capped by the guard.
   */
  #strictFront(serving: HttpServing, onSecure: (socket: tls.TLSSocket, peer: string) => void): { front: net.Server; detachTls: () => void } {
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
    onSecure: (socket: tls.TLSSocket, peer: string) => void,
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

  /** The mTLS step of one port (mtls-server.ts), offering ALPN h2 then http/1.1. */
  #tlsServer(onSecure: (socket: tls.TLSSocket, peer: string) => void): { server: tls.Server; detachTls: () => void } {
    return createMtlsServer({ tls: this.#opts.tls, settings: this.#settings, guard: this.#guard, observer: this.#opts.observer, alpn: INBOUND_ALPN, onVerified: onSecure });
  }

  /** No ALPN: a TLS ClientHello inside the mTLS is the app's own TLS (spliced); anything else is HTTP as always. */
  #detectInside(socket: tls.TLSSocket, peer: string, l: PortListener): void {
    const opaque = this.#opts.opaque!;
    void detectProtocol(socket, this.#settings.timeouts.protocolDetectMs).then((d) => {
      if (socket.destroyed) return;
      if (d.reason === 'closed') return void socket.destroy();
      if (d.protocol !== 'tls') return this.#serve(socket, peer, socket.getProtocol() ?? null, d.protocol === 'h2' ? 'h2' : 'http1', l);
      authorizeAndSplice(socket, peer, l.port.appPort, {
        authorizer: opaque.authorizer,
        appHost: this.#opts.appHost ?? '127.0.0.1',
        settings: this.#settings,
        registry: this.registry,
        ...(opaque.observer ? { observer: opaque.observer } : {}),
        ...(opaque.decided ? { decided: opaque.decided } : {}),
      });
    });
  }

  #serve(socket: net.Socket, peer: string | null, tlsVersion: string | null, protocol: 'h2' | 'http1', l: PortListener): void {
    const conn = this.registry.track('inbound', 'accepted', socket);
    conn.peerIdentity = peer;
    conn.tlsVersion = tlsVersion;
    if (protocol === 'h2') {
      l.serving.serveH2(socket, (stream, _headers, _flags, raw) => l.pipeline.stream(stream, raw, conn));
    } else {
      this.#tracked.set(socket, conn);
      l.serving.serveHttp1(socket);
    }
  }
}
