import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { resolveProxySettings, type ProxySettings } from '../config.ts';
import { ConnectionRegistry, type TrackedConnection } from '../connection-registry.ts';
import { HttpServing } from '../http/http-serving.ts';
import type { NextHopContext } from '../http/next-hop-socket.ts';
import { detectH2c } from '../h2/detect-h2c.ts';
import { RequestPipeline } from '../pipeline/request-pipeline.ts';
import type { ClientTls } from '../tls-dependency.ts';
import type { ProxyObserver } from '../proxy-observer.ts';
import type { DestinationConfig } from './destination-table.ts';
import { RouteStep } from './route.ts';
import { listenOn } from '../../../common/net/listen.ts';
import { ConnectionGuard, DEFAULT_MAX_CONNECTIONS } from '../../../common/net/connection-guard.ts';

/**
 * The app's side: a plain listener its outbound traffic reaches, either by transparent
 * redirect (origin-form request, routed by Host / :authority) or because the app uses it as
 * HTTP_PROXY (absolute-form `GET http://host:port/path`, routed by the URI's authority).
 * The app may speak HTTP/1.1 or h2c (HTTP/2 with prior knowledge: what gRPC clients do to a
 * plaintext target); the first bytes of a connection say which.
 *
 * The outbound arrangement of the pipeline (docs/architecture.md): accept (guarded loopback
 * listener) → detect (h2c preface or HTTP/1.1) → RequestPipeline: head → observe → route
 * (route.ts) → forward to the destination (a peer sidecar over mTLS, or a configured
 * plaintext destination).
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
   * Cap and refusal counting of the listener (src/common/net/connection-guard.ts); default:
   * DEFAULT_MAX_CONNECTIONS, refusals not counted. The first bytes must come within
   * timeouts.requestHeadersMs.
   */
  readonly guard?: ConnectionGuard;
}

export const DEFAULT_OUTBOUND_PORT = 15001;

export class OutboundProxy {
  readonly registry: ConnectionRegistry;
  readonly #opts: OutboundProxyOptions;
  readonly #settings: ProxySettings;
  readonly #hopContext: NextHopContext;
  readonly #route: RouteStep;
  readonly #pipeline: RequestPipeline;
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
    this.#route = new RouteStep(opts.destinations, opts.tls, this.#hopContext, (err) => this.#opts.observer?.handshakeFailed?.('outbound', err));
    const pipeline = new RequestPipeline({
      direction: 'outbound',
      settings: this.#settings,
      hopContext: this.#hopContext,
      observer: opts.observer,
      decide: this.#route,
      draining: () => this.#draining,
    });
    this.#pipeline = pipeline;
    this.#serving = new HttpServing(this.#settings, {
      request: (req, res) => pipeline.request(req, res, this.#tracked.get(req.socket)),
      upgrade: (req, socket, head) => pipeline.upgrade(req, socket, head, this.#tracked.get(req.socket)),
      refused: pipeline.answers.counted,
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
    await Promise.all(Array.from(this.#route.destinations(), (d) => d.close()));
    return cut;
  }

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
        this.#serving.serveH2(socket, (stream, _headers, _flags, raw) => this.#pipeline.stream(stream, raw, conn));
      } else {
        this.#tracked.set(socket, conn);
        this.#serving.serveHttp1(socket);
      }
    });
  }
}
