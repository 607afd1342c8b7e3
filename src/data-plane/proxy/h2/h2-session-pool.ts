import * as http2 from 'node:http2';
import type * as tls from 'node:tls';
import { ProxyError } from '../http/errors.ts';
import { connectTrackedNextHop, type NextHopContext, type NextHopTarget } from '../http/next-hop-socket.ts';
import type { TrackedConnection } from '../connection-registry.ts';

/**
 * ONE multiplexed HTTP/2 client session toward a next hop: the app's gRPC port (h2c on
 * loopback) or a peer sidecar (h2 over mTLS). HTTP/2 carries any number of concurrent
 * streams on one connection, so there is no pool of connections to manage: one session,
 * made on first use, replaced when it closes, receives GOAWAY or fails (the next stream
 * opens a new one; streams already open on a closing session finish there).
 */
export class H2SessionPool {
  readonly label: string;
  readonly #target: NextHopTarget;
  readonly #ctx: NextHopContext;
  #session: http2.ClientHttp2Session | null = null;
  /** Each session's /connections entry (a stream counts a request on it; outbound, its verified peer labels the stream). */
  readonly #tracked = new WeakMap<http2.ClientHttp2Session, TrackedConnection>();
  #connecting: Promise<http2.ClientHttp2Session> | null = null;
  #destroyed = false;

  constructor(target: NextHopTarget, ctx: NextHopContext) {
    this.#target = target;
    this.#ctx = ctx;
    this.label = target.label;
  }

  /** timeouts.streamIdleMs: forward-stream.ts cancels a stream on which nothing moved for this long. */
  get streamIdleMs(): number {
    return this.#ctx.settings.timeouts.streamIdleMs;
  }

  /** A usable session now, or a promise of one (rejects with a ProxyError naming the failure). */
  session(): http2.ClientHttp2Session | Promise<http2.ClientHttp2Session> {
    const s = this.#session;
    if (s !== null && !s.closed && !s.destroyed) return s;
    this.#session = null;
    return (this.#connecting ??= this.#connect().finally(() => (this.#connecting = null)));
  }

  /** The /connections entry of a session this pool opened. */
  connectionOf(session: http2.ClientHttp2Session): TrackedConnection | undefined {
    return this.#tracked.get(session);
  }

  /** Closes the session (streams in flight are cut); later calls fail. */
  destroy(): void {
    this.#destroyed = true;
    this.#session?.destroy();
    this.#session = null;
  }

  async #connect(): Promise<http2.ClientHttp2Session> {
    if (this.#destroyed) throw new ProxyError('MESHLET_UPSTREAM_CONNECT_FAILED', `${this.label}: the sidecar is shutting down`);
    const tracked = await connectTrackedNextHop(this.#target, this.#ctx);
    const socket = tracked.socket;
    const where = `${this.#target.label} at ${this.#target.host}:${this.#target.port}`;
    if (this.#target.tlsOptions && (socket as tls.TLSSocket).alpnProtocol !== 'h2') {
      socket.destroy();
      throw new ProxyError('MESHLET_UPSTREAM_TLS_FAILED', `${where} did not negotiate HTTP/2 (ALPN h2) on the mTLS connection`);
    }
    const { settings } = this.#ctx;
    const session = http2.connect(`http://${this.#target.host}:${this.#target.port}`, {
      createConnection: () => socket,
      settings: { maxHeaderListSize: settings.limits.maxHeaderBytes * 4 },
      // Streams beyond the peer's limit wait in nghttp2's queue rather than failing. That queue
      // has no bound of its own: inbound, a caller's streams are capped by its share
      // (limits.maxInFlightPerCaller), and every waiting stream is idle, so
      // timeouts.streamIdleMs ends it (504) — slower than the HTTP/1.1 pool's fail-fast queue.
      peerMaxConcurrentStreams: 1000,
    });
    this.#tracked.set(session, tracked);
    session.on('error', () => {
      // Streams in flight see their own error; the next stream opens a new session.
    });
    const forget = (): void => {
      if (this.#session === session) this.#session = null;
    };
    session.once('close', forget);
    session.once('goaway', forget);
    session.setTimeout(settings.timeouts.idleMs, () => session.close());
    if (this.#destroyed) {
      session.destroy();
      throw new ProxyError('MESHLET_UPSTREAM_CONNECT_FAILED', `${this.label}: the sidecar is shutting down`);
    }
    this.#session = session;
    return session;
  }
}
