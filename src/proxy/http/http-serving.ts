import * as http from 'node:http';
import * as http2 from 'node:http2';
import type * as net from 'node:net';
import type { Duplex } from 'node:stream';
import type { ProxySettings } from '../config.ts';
import { handleClientError } from './client-error.ts';
import type { ProxyErrorCode } from './errors.ts';

/** What a listener does with what its connections carry. */
export interface HttpServingHandlers {
  request(req: http.IncomingMessage, res: http.ServerResponse): void;
  /** An HTTP/1.1 request with `Upgrade` (WebSocket): the socket is the handler's from here on. */
  upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void;
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
  readonly http1: http.Server;
  readonly #settings: ProxySettings;
  readonly #sessions = new Set<http2.ServerHttp2Session>();
  readonly #sockets = new Set<net.Socket>();
  #draining = false;

  constructor(settings: ProxySettings, handlers: HttpServingHandlers) {
    this.#settings = settings;
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

  serveH2(socket: net.Socket, onStream: StreamListener): http2.ServerHttp2Session {
    const { limits, timeouts } = this.#settings;
    const session = http2.performServerHandshake(socket, {
      settings: { maxHeaderListSize: limits.maxHeaderBytes, maxConcurrentStreams: 256 },
    });
    this.#sessions.add(session);
    session.once('close', () => this.#sessions.delete(session));
    session.on('error', () => {
      // A broken connection; its streams are already failed by node:http2.
    });
    session.on('stream', onStream);
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
