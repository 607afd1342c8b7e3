import type * as NodeHttp from 'node:http';
import { http } from '../../../common/net/node-http.ts';
import * as http2 from 'node:http2';
import type * as net from 'node:net';
import type { Duplex } from 'node:stream';
import type { ProxySettings } from '../config.ts';
import { handleClientError } from './client-error.ts';
import { ProxyError, type ProxyErrorCode } from './errors.ts';

/** After a rapid-reset GOAWAY, how long the connection is still read (so the GOAWAY arrives) before it is cut. */
export const H2_FLOOD_CLOSE_MS = 1_000;

/** What a listener does with what its connections carry. */
export interface HttpServingHandlers {
  request(req: NodeHttp.IncomingMessage, res: NodeHttp.ServerResponse): void;
  /** An HTTP/1.1 request with `Upgrade` (WebSocket): the socket is the handler's from here on. */
  upgrade(req: NodeHttp.IncomingMessage, socket: Duplex, head: Buffer): void;
  /** A parser refusal (counted by the proxy's observer). */
  refused(code: ProxyErrorCode): void;
}

/** node:http2's 'stream' event: the flat rawHeaders list comes fourth, after the flags. */
export type StreamListener = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number, rawHeaders: string[]) => void;

/**
 * The HTTP side of one listener, behind whatever accepted the connection (a tls.Server for a
 * STRICT port, a net.Server that detects TLS for a PERMISSIVE port, the outbound's plain
 * listener): the listener decides the protocol (ALPN, or the h2c preface) and hands the
 * socket to `serveHttp1` or `serveH2`.
 *
 * HTTP/1.1 is a node:http server that never listens itself: sockets reach it by
 * `emit('connection')`, and it parses with llhttp in strict mode exactly as before (the
 * smuggling tests pin that). HTTP/2 sessions are made per socket with
 * `http2.performServerHandshake`, so each session's 'stream' listener knows its connection
 * (peer identity, port) without a lookup per stream.
 *
 * It also owns the drain: every accepted socket is tracked until it closes, so the drain
 * knows what is still open whatever protocol it speaks (HTTP/1.1, HTTP/2, an upgraded
 * tunnel, a connection still being detected).
 */
export class HttpServing {
  readonly http1: NodeHttp.Server;
  readonly #settings: ProxySettings;
  readonly #refused: (code: ProxyErrorCode) => void;
  readonly #sessions = new Set<http2.ServerHttp2Session>();
  readonly #sockets = new Set<net.Socket>();
  #draining = false;

  constructor(settings: ProxySettings, handlers: HttpServingHandlers) {
    this.#settings = settings;
    this.#refused = handlers.refused;
    const { timeouts, limits } = settings;
    const server = http.createServer({
      // Strict llhttp: refuses CL+TE, conflicting CL, obs-fold, invalid bytes (tested one by one).
      insecureHTTPParser: false,
      maxHeaderSize: limits.maxHeaderBytes,
      noDelay: true,
      keepAliveTimeout: timeouts.idleMs,
      headersTimeout: timeouts.requestHeadersMs,
      // node checks the head deadline on this period (default 30 s); half the timeout keeps it honest.
      connectionsCheckingInterval: Math.min(Math.ceil(timeouts.requestHeadersMs / 2), 30_000),
      // Bodies may stream for as long as they need; slow heads are bounded by headersTimeout.
      requestTimeout: 0,
      // Checked by the proxy itself, so the refusal carries the catalog code (node's own 400 would not).
      requireHostHeader: false,
    });
    // One more than the limit, so an excess is SEEN (node silently drops fields past maxHeadersCount).
    server.maxHeadersCount = limits.maxHeaderCount + 1;
    server.on('clientError', (err: Error & { code?: string }, socket: Duplex) => handleClientError(err, socket, handlers.refused));
    server.on('request', handlers.request);
    server.on('upgrade', handlers.upgrade);
    // node:http starts its connection list and head-timeout checker on 'listening'; this
    // server never listens (sockets are handed to it), so start them the same way.
    server.emit('listening');
    this.http1 = server;
  }

  get draining(): boolean {
    return this.#draining;
  }

  /** Open connections of this listener (every protocol, including ones still being detected). */
  get open(): number {
    return this.#sockets.size;
  }

  /** Tracks a socket the listener accepted (the raw TCP socket) until it closes. */
  accept(socket: net.Socket): void {
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
  }

  serveHttp1(socket: net.Socket): void {
    this.http1.emit('connection', socket);
  }

  /**
   * One HTTP/2 server session on `socket`. Besides node's own flood limits (nghttp2's
   * RST_STREAM rate limit of 1,000 CANCELs then 33/s, maxSessionInvalidFrames 1,000,
   * maxSessionRejectedStreams 100, maxOutstandingPings 10, maxSessionMemory 10 MB, all left at
   * their defaults), it sets limits.h2MaxConcurrentStreams and counts premature resets: streams
   * that end before their response head went out, whoever reset them (a client's RST_STREAM,
   * or the server's own reset of a malformed stream — the "MadeYouReset" shape). Once a session
   * has had limits.h2MaxPrematureResets of them and they are more than half of its ended
   * streams (Envoy's rule), it gets GOAWAY ENHANCE_YOUR_CALM and is closed H2_FLOOD_CLOSE_MS
   * later, counted as MESHLET_H2_RESET_FLOOD (CVE-2023-44487, HTTP/2 rapid reset).
   *
   * Streams reach `onStream` one macrotask late, in a batch per session: node hands each
   * HEADERS frame to JS (and runs its 'stream' listeners) before it reads the next frame of the
   * same packet, so a HEADERS + RST_STREAM pair would otherwise be proxied — authorized, sent
   * to the app — and only then cancelled (measured on Node 24: 2,000 pairs gave 1,050 live
   * 'stream' events before nghttp2's own GOAWAY). After the whole read, a stream its client
   * already reset is dropped here and costs the app nothing. Per stream this adds four array
   * slots and two listeners ('error', 'close'); per read that carries new streams, one
   * setImmediate.
   */
  serveH2(socket: net.Socket, onStream: StreamListener): http2.ServerHttp2Session {
    const { limits, timeouts } = this.#settings;
    const session = http2.performServerHandshake(socket, {
      settings: { maxHeaderListSize: limits.maxHeaderBytes, maxConcurrentStreams: limits.h2MaxConcurrentStreams },
    });
    this.#sessions.add(session);
    session.once('close', () => this.#sessions.delete(session));
    session.on('error', () => {
      // A broken connection; its streams are already failed by node:http2.
    });
    const maxPremature = limits.h2MaxPrematureResets;
    const refused = this.#refused;
    let ended = 0;
    let premature = 0;
    let flooded = false;
    let lastStreamId = 0;
    const streamEnded = (early: boolean): void => {
      ended++;
      if (!early) return;
      premature++;
      // A session being torn down closes all its streams at once: that is no flood.
      if (flooded || premature < maxPremature || premature * 2 <= ended || session.destroyed) return;
      flooded = true;
      refused('MESHLET_H2_RESET_FLOOD');
      // GOAWAY now (nghttp2 then ignores any new stream), and keep reading for a moment: a
      // socket destroyed while the attacker still writes is reset, and the reset can discard
      // the GOAWAY before the client reads it. Then cut whatever is left.
      session.goaway(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM, lastStreamId);
      const cut = setTimeout(() => {
        session.destroy(new ProxyError('MESHLET_H2_RESET_FLOOD', `${premature} of ${ended} streams reset before their response (limits.h2MaxPrematureResets)`), http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
      }, H2_FLOOD_CLOSE_MS);
      cut.unref();
      session.once('close', () => clearTimeout(cut));
    };
    const onStreamClose = function (this: http2.ServerHttp2Stream): void {
      streamEnded(!this.headersSent);
    };
    // [stream, headers, flags, rawHeaders] per new stream, flat: no allocation per stream.
    const arrived: unknown[] = [];
    const dispatchArrived = (): void => {
      try {
        for (let i = 0; i < arrived.length; i += 4) {
          const stream = arrived[i] as http2.ServerHttp2Stream;
          // Reset already (counted by its 'close'): nothing is asked of the app.
          if (stream.destroyed || stream.closed) continue;
          onStream(stream, arrived[i + 1] as http2.IncomingHttpHeaders, arrived[i + 2] as number, arrived[i + 3] as string[]);
        }
      } finally {
        arrived.length = 0;
      }
    };
    session.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number, raw: string[]) => {
      // A reset with an error code makes node emit 'error' on the stream: never unhandled.
      stream.on('error', ignoreStreamError);
      // Counted as they happen, frame by frame: the limit acts inside the read that floods.
      stream.on('close', onStreamClose);
      lastStreamId = stream.id ?? lastStreamId;
      if (arrived.push(stream, headers, flags, raw) === 4) setImmediate(dispatchArrived);
    });
    session.setTimeout(timeouts.idleMs, () => session.close());
    // A session that starts during a drain says GOAWAY at once: its first streams still finish.
    if (this.#draining) session.close();
    return session;
  }

  /**
   * Stop accepting (closing `front`), close idle HTTP/1.1 connections (and keep closing them
   * as they go idle: in-flight responses carry `connection: close`), send GOAWAY on every
   * HTTP/2 session (streams in flight finish), wait up to `timeoutMs`, then cut what is left.
   * Resolves with the number of connections cut.
   */
  drain(front: net.Server, timeoutMs: number): Promise<number> {
    this.#draining = true;
    if (front.listening) front.close();
    for (const session of this.#sessions) session.close();
    return new Promise((resolve) => {
      const finish = (cut: number): void => {
        clearInterval(sweep);
        clearTimeout(deadline);
        this.http1.close();
        resolve(cut);
      };
      // Coarse on purpose: only while draining.
      const sweep = setInterval(() => {
        this.http1.closeIdleConnections();
        if (this.#sockets.size === 0) finish(0);
      }, 50);
      const deadline = setTimeout(() => {
        const cut = this.#sockets.size;
        for (const s of this.#sockets) s.destroy();
        for (const session of this.#sessions) session.destroy();
        this.http1.closeAllConnections();
        finish(cut);
      }, timeoutMs);
      this.http1.closeIdleConnections();
      if (this.#sockets.size === 0) finish(0);
    });
  }
}

function ignoreStreamError(): void {
  // The forwarding code learns of a reset through 'close' / 'aborted'.
}
