import type * as net from 'node:net';
import type * as tls from 'node:tls';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { ProxyError } from '../http/errors.ts';
import type { ProxySettings } from '../config.ts';
import type { ConnectionDirection, ConnectionRegistry } from '../connection-registry.ts';
import { connectNextHop, type UpstreamTarget, originatedPeer } from './next-hop-connect.ts';
import { Http1ResponseParser, ResponseParseError, type ResponseSink } from './response-parser.ts';

export interface Http1PoolOptions {
  readonly settings: ProxySettings;
  readonly registry: ConnectionRegistry;
  readonly direction: ConnectionDirection;
}

type Handler = Dispatcher.DispatchHandler;
type Options = Dispatcher.DispatchOptions;

/** The code forward-request.ts retries a bodiless idempotent request on (undici's name for it, kept). */
const SOCKET_CLOSED = 'UND_ERR_SOCKET';
const CONTENT_LENGTH_MISMATCH = 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH';
const PAYLOAD_METHODS = new Set(['POST', 'PUT', 'PATCH']);
const SWEEP_MS = 1_000;

function socketClosed(message: string): Error {
  return Object.assign(new Error(message), { code: SOCKET_CLOSED });
}

/**
 * A lean HTTP/1.1 keep-alive pool toward one next hop, speaking undici's dispatch() contract
 * (legacy handler: onConnect, onHeaders, onData, onComplete, onError) so forward-request.ts
 * uses it exactly as it used undici's Pool. One request at a time per connection (no
 * pipelining: a failure mid-pipeline would fail requests the client never saw answered); the
 * request head is built as ONE string and written in one corked write; the response is read
 * by the strict parser in response-parser.ts (head limit: 4x limits.maxHeaderBytes, since
 * apps legitimately answer with larger heads than we accept from callers).
 *
 * Header names and values are written as given: they come from node's strict request parser
 * through forwardHeaders() (no CR, LF or NUL can be in them).
 *
 * Failures keep the codes forward-request.ts reads: a connection that closes before any
 * response byte is `UND_ERR_SOCKET` (the one case it retries, for bodiless idempotent
 * requests), a body shorter than its Content-Length `UND_ERR_REQ_CONTENT_LENGTH_MISMATCH`;
 * everything else is already the ProxyError the client will see.
 */
/**
 * What the forwarding code needs of a pool: undici's dispatch() contract (handler callbacks),
 * without undici itself — loading undici costs a sidecar ~30 MB of heap for nothing (measured).
 */
export interface UpstreamDispatcher {
  dispatch(options: Options, handler: Handler): boolean;
  destroy(): Promise<void>;
}

export class Http1Pool implements UpstreamDispatcher {
  readonly target: UpstreamTarget;
  readonly #opts: Http1PoolOptions;
  readonly #hostHeader: string;
  readonly #idle: PooledConnection[] = [];
  readonly #waiting: { options: Options; handler: Handler }[] = [];
  #connections = 0;
  #destroyed = false;
  #sweep: NodeJS.Timeout | null = null;

  constructor(target: UpstreamTarget, opts: Http1PoolOptions) {
    this.target = target;
    this.#opts = opts;
    this.#hostHeader = target.host.includes(':') ? `[${target.host}]:${target.port}` : `${target.host}:${target.port}`;
  }

  get settings(): ProxySettings {
    return this.#opts.settings;
  }

  get hostHeader(): string {
    return this.#hostHeader;
  }

  dispatch(options: Options, handler: Handler): boolean {
    if (this.#destroyed) {
      queueMicrotask(() => handler.onError?.(socketClosed('the pool is closed')));
      return false;
    }
    const conn = this.#takeIdle();
    if (conn !== null) {
      conn.run(options, handler);
    } else if (this.#connections < this.#opts.settings.limits.maxConnectionsPerUpstream) {
      this.#open(options, handler);
    } else {
      this.#waiting.push({ options, handler });
    }
    return true;
  }

  #takeIdle(): PooledConnection | null {
    let conn = this.#idle.pop();
    while (conn !== undefined && conn.socket.destroyed) conn = this.#idle.pop();
    return conn ?? null;
  }

  #open(options: Options, handler: Handler): void {
    this.#connections++;
    const { settings, registry, direction } = this.#opts;
    connectNextHop(this.target, settings.timeouts, (err, socket) => {
      if (err !== null || socket === null) {
        this.#connections--;
        handler.onError?.(err ?? new ProxyError('MESHLET_INTERNAL', 'no socket'));
        this.#next();
        return;
      }
      const tracked = registry.track(direction, 'originated', socket);
      if (this.target.tlsOptions) {
        tracked.tlsVersion = (socket as tls.TLSSocket).getProtocol() ?? null;
        tracked.peerIdentity = originatedPeer(this.target, socket);
      }
      const conn = new PooledConnection(this, socket);
      socket.once('close', () => {
        this.#connections--;
        this.#next();
      });
      if (this.#destroyed) {
        socket.destroy();
        handler.onError?.(socketClosed('the pool is closed'));
        return;
      }
      conn.run(options, handler);
    });
  }

  /** A connection finished its exchange and may carry another. */
  release(conn: PooledConnection): void {
    const waiting = this.#waiting.shift();
    if (waiting !== undefined) return conn.run(waiting.options, waiting.handler);
    conn.idleSince = Date.now();
    this.#idle.push(conn);
    if (this.#sweep === null) {
      // One coarse timer per pool, only while connections sit idle (never a timer per request).
      this.#sweep = setInterval(() => this.#closeIdle(), SWEEP_MS);
      this.#sweep.unref();
    }
  }

  /** A connection closed: a waiting request may now open a new one. */
  #next(): void {
    if (this.#destroyed) return;
    const waiting = this.#waiting.shift();
    if (waiting !== undefined) this.dispatch(waiting.options, waiting.handler);
  }

  #closeIdle(): void {
    const now = Date.now();
    for (let i = this.#idle.length - 1; i >= 0; i--) {
      const conn = this.#idle[i]!;
      if (conn.socket.destroyed || now - conn.idleSince >= conn.idleLimitMs) {
        this.#idle.splice(i, 1);
        conn.socket.destroy();
      }
    }
    if (this.#idle.length === 0 && this.#sweep !== null) {
      clearInterval(this.#sweep);
      this.#sweep = null;
    }
  }

  close(): Promise<void> {
    return this.destroy();
  }

  destroy(): Promise<void> {
    this.#destroyed = true;
    if (this.#sweep !== null) clearInterval(this.#sweep);
    this.#sweep = null;
    for (const conn of this.#idle) conn.socket.destroy();
    this.#idle.length = 0;
    for (const w of this.#waiting.splice(0)) w.handler.onError?.(socketClosed('the pool is closed'));
    return Promise.resolve();
  }
}

/** One keep-alive connection and the exchange it is carrying, if any. */
class PooledConnection implements ResponseSink {
  readonly socket: net.Socket;
  readonly #pool: Http1Pool;
  readonly #parser: Http1ResponseParser;
  idleSince = 0;
  idleLimitMs: number;
  #handler: Handler | null = null;
  #body: Readable | null = null;
  #bodyDone = true;
  #bodyChunked = false;
  #bodyExpected = -1;
  #bodySent = 0;
  #finished = true;
  #reusable = false;

  constructor(pool: Http1Pool, socket: net.Socket) {
    this.#pool = pool;
    this.socket = socket;
    this.idleLimitMs = pool.settings.timeouts.idleMs;
    this.#parser = new Http1ResponseParser(this, pool.settings.limits.maxHeaderBytes * 4);
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('error', this.#onSocketError);
    socket.on('close', this.#onClose);
  }

  run(options: Options, handler: Handler): void {
    this.#handler = handler;
    this.#finished = false;
    this.#reusable = false;
    const method = options.method;
    this.#parser.expect(method);
    // Per exchange, so a late abort from a finished exchange (its client went away while the
    // response was flushing) can never cut the next exchange on this reused connection.
    handler.onConnect?.((err?: Error) => {
      if (this.#handler === handler) this.#fail(err ?? new Error('request aborted'));
    });
    if (this.#finished) return;
    let head = `${method} ${options.path} HTTP/1.1\r\n`;
    const headers = options.headers as string[] | null | undefined;
    let hasHost = false;
    let contentLength = -1;
    if (headers) {
      for (let i = 0; i < headers.length; i += 2) {
        const name = headers[i]!;
        const value = headers[i + 1]!;
        if (name.length === 4 && name.toLowerCase() === 'host') hasHost = true;
        else if (name.length === 14 && name.toLowerCase() === 'content-length') contentLength = Number(value);
        head += `${name}: ${value}\r\n`;
      }
    }
    if (!hasHost) head += `host: ${this.#pool.hostHeader}\r\n`;
    const body = (options.body ?? null) as Readable | null;
    this.#body = body;
    this.#bodySent = 0;
    this.#bodyExpected = contentLength;
    this.#bodyChunked = body !== null && contentLength === -1;
    if (this.#bodyChunked) head += 'transfer-encoding: chunked\r\n';
    else if (body === null && contentLength === -1 && PAYLOAD_METHODS.has(method)) head += 'content-length: 0\r\n';
    head += '\r\n';
    const socket = this.socket;
    socket.cork();
    socket.write(head, 'latin1');
    process.nextTick(uncork, socket);
    if (body === null) {
      this.#bodyDone = true;
      return;
    }
    this.#bodyDone = false;
    body.on('data', this.#onBodyData);
    body.once('end', this.#onBodyEnd);
    body.once('error', this.#onBodyError);
    body.once('close', this.#onBodyClose);
  }

  // --- request body -------------------------------------------------------------------

  readonly #onBodyData = (chunk: Buffer): void => {
    this.#bodySent += chunk.length;
    const socket = this.socket;
    let ok: boolean;
    if (this.#bodyChunked) {
      if (chunk.length === 0) return;
      socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
      socket.write(chunk);
      ok = socket.write('\r\n', 'latin1');
    } else {
      ok = socket.write(chunk);
    }
    if (!ok) {
      this.#body?.pause();
      this.socket.once('drain', this.#resumeBody);
    }
  };

  readonly #resumeBody = (): void => {
    this.#body?.resume();
  };

  readonly #onBodyEnd = (): void => {
    this.#bodyDone = true;
    this.#detachBody();
    if (this.#bodyChunked) this.socket.write('0\r\n\r\n');
    else if (this.#bodyExpected !== this.#bodySent) {
      this.#fail(Object.assign(new Error(`request body of ${this.#bodySent} bytes, Content-Length said ${this.#bodyExpected}`), { code: CONTENT_LENGTH_MISMATCH }));
      return;
    }
    if (this.#finished) this.#settle();
  };

  readonly #onBodyError = (err: Error): void => {
    this.#fail(err);
  };

  readonly #onBodyClose = (): void => {
    if (!this.#bodyDone) this.#fail(socketClosed('the request body was cut short by the client'));
  };

  #detachBody(): void {
    const body = this.#body;
    if (body === null) return;
    body.off('data', this.#onBodyData);
    body.off('end', this.#onBodyEnd);
    body.off('error', this.#onBodyError);
    body.off('close', this.#onBodyClose);
    this.socket.off('drain', this.#resumeBody);
    this.#body = null;
  }

  // --- response -------------------------------------------------------------------------

  readonly #onData = (chunk: Buffer): void => {
    if (this.#handler === null) {
      // Bytes on an idle connection: nothing was asked; the connection cannot be trusted.
      this.socket.destroy();
      return;
    }
    try {
      this.#parser.execute(chunk);
    } catch (err) {
      this.#fail(err instanceof ResponseParseError ? badResponse(this.#pool.target.label, err) : (err as Error));
    }
  };

  /** A resume() from a finished exchange (a late 'drain') must not undo the next one's backpressure. */
  #resumeFor: Handler | null = null;
  readonly #resume = (): void => {
    if (this.#handler !== null && this.#handler === this.#resumeFor) this.socket.resume();
  };

  onResponseHead(status: number, rawHeaders: Buffer[], statusText: string): void {
    const handler = this.#handler;
    if (handler === null) return;
    if (status >= 200) {
      const hint = keepAliveHintMs(rawHeaders);
      // Give up a pooled connection a second before the next hop would, so it is not reused as it closes.
      if (hint > 0) this.idleLimitMs = Math.max(0, Math.min(this.#pool.settings.timeouts.idleMs, hint - 1_000));
    }
    if (status >= 200) this.#resumeFor = handler;
    if (handler.onHeaders?.(status, rawHeaders, this.#resume, statusText) === false) this.socket.pause();
  }

  onResponseBody(chunk: Buffer): void {
    if (this.#handler?.onData?.(chunk) === false) this.socket.pause();
  }

  onResponseEnd(rawTrailers: Buffer[], reusable: boolean): void {
    this.#finished = true;
    this.#reusable = reusable;
    const handler = this.#handler;
    if (handler === null) return;
    // The response may end before the request body does (an early 4xx): the connection is reusable
    // only once both are complete; an unsent body makes it unusable.
    if (!this.#bodyDone) {
      this.#reusable = false;
      this.#detachBody();
    }
    this.#handler = null;
    handler.onComplete?.(rawTrailers.length === 0 ? null : rawTrailers.map((b) => b.toString('latin1')));
    this.#settle();
  }

  /** After a complete exchange: back to the pool, or closed. */
  #settle(): void {
    if (this.#handler !== null || !this.#finished) return;
    if (this.#reusable && !this.socket.destroyed && this.socket.readable) {
      // The last body chunk may have asked for a pause; the exchange is over, the next one needs reads.
      if (this.socket.isPaused()) this.socket.resume();
      this.#resumeFor = null;
      this.#pool.release(this);
    } else {
      this.socket.destroy();
    }
  }

  readonly #onEnd = (): void => {
    if (this.#handler === null) {
      this.socket.destroy();
      return;
    }
    try {
      this.#parser.finish();
    } catch {
      // fall through to the close handling below
    }
    if (this.#handler !== null) this.#fail(this.#closedError());
    this.socket.destroy();
  };

  readonly #onSocketError = (err: Error): void => {
    if (this.#handler !== null) this.#fail(this.#parser.started ? err : socketClosed(`${this.#pool.target.label}: ${err.message}`));
  };

  readonly #onClose = (): void => {
    if (this.#handler !== null) this.#fail(this.#closedError());
  };

  #closedError(): Error {
    return this.#parser.started
      ? new ProxyError('MESHLET_UPSTREAM_RESET', `${this.#pool.target.label} closed the connection in the middle of the response`)
      : socketClosed(`${this.#pool.target.label} closed the connection before responding`);
  }

  #fail(err: Error): void {
    const handler = this.#handler;
    this.#handler = null;
    this.#finished = true;
    this.#reusable = false;
    this.#detachBody();
    this.socket.destroy();
    handler?.onError?.(err);
  }
}

function uncork(socket: net.Socket): void {
  socket.uncork();
}

function badResponse(label: string, err: ResponseParseError): ProxyError {
  return new ProxyError('MESHLET_UPSTREAM_BAD_RESPONSE', `unparsable response from ${label}: ${err.message}`, { cause: err });
}

/** `Keep-Alive: timeout=N` (seconds) from a response head, in ms; -1 when absent. */
function keepAliveHintMs(raw: Buffer[]): number {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length !== 10 || (name[0]! | 0x20) !== 0x6b /* k */) continue;
    if (name.toString('latin1').toLowerCase() !== 'keep-alive') continue;
    const m = /timeout\s*=\s*(\d+)/i.exec(raw[i + 1]!.toString('latin1'));
    if (m) return Number(m[1]) * 1000;
  }
  return -1;
}
