import type * as net from 'node:net';
import type { Readable } from 'node:stream';
import { idleTimeout, ProxyError } from '../http/errors.ts';
import type { ProxySettings } from '../config.ts';
import type { TrackedConnection } from '../connection-registry.ts';
import { connectTrackedNextHop, type NextHopContext, type UpstreamTarget } from './next-hop-connect.ts';
import { Http1ResponseParser, ResponseParseError, type ResponseSink } from './response-parser.ts';
import { ClosedBeforeResponse, type InFlightSlot, type Upstream, type UpstreamHandler, type UpstreamRequest } from './upstream.ts';

export type { InFlightSlot };
export type Http1PoolOptions = NextHopContext;

type Handler = UpstreamHandler;
type Options = UpstreamRequest;

const PAYLOAD_METHODS = new Set(['POST', 'PUT', 'PATCH']);
/** The sweep's longest period; shorter when a timeout it enforces is short (a quarter of it). */
const SWEEP_MS = 1_000;
/**
 * A cancelled exchange whose request is complete on the wire has its response read and dropped,
 * up to this many body bytes, so its connection goes back to the pool instead of being closed
 * (a cancelled stream must not cost the app a new connection: CVE-2023-44487). Past it, the
 * connection is closed: draining a large response costs more than a new connection.
 */
export const DISCARD_LIMIT_BYTES = 64 * 1024;

/**
 * A lean HTTP/1.1 keep-alive pool toward one next hop, implementing meshlet's Upstream
 * interface (upstream.ts: dispatch() with a handler — onConnect, onHeaders, onData, onComplete,
 * onError). One request at a time per connection (no
 * pipelining: a failure mid-pipeline would fail requests the client never saw answered); the
 * request head is built as ONE string and written in one corked write; the response is read
 * by the strict parser in response-parser.ts (head limit: 4x limits.maxHeaderBytes, since
 * apps legitimately answer with larger heads than we accept from callers).
 *
 * Header names and values are written as given: they come from node's strict request parser
 * through forwardHeaders() (no CR, LF or NUL can be in them).
 *
 * Every failure is named here, where it happens, as the ProxyError the caller will see
 * (connect failures by next-hop-connect.ts): a connection that closes or fails before any
 * response byte is 502 MESHLET_UPSTREAM_RESET as a ClosedBeforeResponse (the one failure
 * forward-request.ts retries, for bodiless idempotent requests), after it 502
 * MESHLET_UPSTREAM_RESET; a response the parser refuses 502 MESHLET_UPSTREAM_BAD_RESPONSE; a
 * request body that does not match its Content-Length, or whose stream errors or closes before
 * its end, 400 MESHLET_BAD_REQUEST (closing the caller's connection) — the same for every
 * protocol the caller spoke.
 *
 * Overload is refused fast, never queued without bound (issue 11 item 5): beyond
 * limits.maxConnectionsPerUpstream a request waits in a FIFO of at most
 * limits.maxPendingPerUpstream (else 503 MESHLET_UPSTREAM_BUSY at once) for at most
 * timeouts.queueWaitMs (else 503 MESHLET_UPSTREAM_QUEUE_TIMEOUT). An exchange on which no
 * byte moved for timeouts.streamIdleMs is failed (408 / 504, see PooledConnection.checkIdle).
 * All of it is enforced by ONE coarse timer per pool (running while the pool has connections
 * or waiters), never a timer per request: per request the pool adds an integer increment per
 * chunk, and a Date.now() plus one small object only for a request that has to wait.
 *
 * A client that cancels (HTTP/2 RST_STREAM, a closed connection) before its request was
 * written costs the app nothing; after, the connection is kept when the request is complete
 * on the wire (its response is read and dropped, up to DISCARD_LIMIT_BYTES).
 */
interface Waiter {
  readonly options: Options;
  readonly handler: Handler;
  readonly slot: InFlightSlot | null;
  readonly since: number;
}

export class Http1Pool implements Upstream {
  readonly target: UpstreamTarget;
  readonly #opts: Http1PoolOptions;
  readonly #hostHeader: string;
  readonly #idle: PooledConnection[] = [];
  /** Every open connection, busy or idle (for the sweep). */
  readonly #open = new Set<PooledConnection>();
  /** FIFO: the oldest waiter first, so the sweep only ever looks at the head for timeouts. */
  readonly #waiting: Waiter[] = [];
  readonly #sweepMs: number;
  #connections = 0;
  #destroyed = false;
  #sweep: NodeJS.Timeout | null = null;

  constructor(target: UpstreamTarget, opts: Http1PoolOptions) {
    this.target = target;
    this.#opts = opts;
    this.#hostHeader = target.host.includes(':') ? `[${target.host}]:${target.port}` : `${target.host}:${target.port}`;
    const { queueWaitMs, streamIdleMs } = opts.settings.timeouts;
    this.#sweepMs = Math.max(10, Math.min(SWEEP_MS, Math.ceil(queueWaitMs / 4), Math.ceil(streamIdleMs / 4)));
  }

  get settings(): ProxySettings {
    return this.#opts.settings;
  }

  get hostHeader(): string {
    return this.#hostHeader;
  }

  /** Requests waiting for a connection (tests, diagnostics). */
  get pending(): number {
    return this.#waiting.length;
  }

  /** Open connections, busy or idle (tests, diagnostics). */
  get connections(): number {
    return this.#connections;
  }

  /**
   * Runs the exchange on an idle connection, a new one (below maxConnectionsPerUpstream), or
   * queues it (below maxPendingPerUpstream); else refuses it at once with 503
   * MESHLET_UPSTREAM_BUSY through handler.onError. `slot` is released when the exchange is over.
   */
  dispatch(options: Options, handler: Handler, slot: InFlightSlot | null = null): boolean {
    if (this.#destroyed) {
      slot?.release();
      queueMicrotask(() => handler.onError(this.#closed()));
      return false;
    }
    const conn = this.#takeIdle();
    if (conn !== null) {
      this.#serve(conn, options, handler, slot);
    } else if (this.#connections < this.#opts.settings.limits.maxConnectionsPerUpstream) {
      this.#connect(options, handler, slot);
    } else if (this.#waiting.length < this.#opts.settings.limits.maxPendingPerUpstream) {
      this.#waiting.push({ options, handler, slot, since: Date.now() });
      this.#startSweep();
    } else {
      const { maxConnectionsPerUpstream, maxPendingPerUpstream } = this.#opts.settings.limits;
      slot?.release();
      handler.onError(new ProxyError('MESHLET_UPSTREAM_BUSY', `${this.target.label}: all ${maxConnectionsPerUpstream} connections are busy and ${maxPendingPerUpstream} requests already wait (limits.maxConnectionsPerUpstream, limits.maxPendingPerUpstream)`));
      return false;
    }
    return true;
  }

  #takeIdle(): PooledConnection | null {
    let conn = this.#idle.pop();
    while (conn !== undefined && conn.socket.destroyed) conn = this.#idle.pop();
    return conn ?? null;
  }

  #connect(options: Options, handler: Handler, slot: InFlightSlot | null): void {
    this.#connections++;
    connectTrackedNextHop(this.target, this.#opts, (err, tracked) => {
      if (tracked === null) {
        this.#connections--;
        slot?.release();
        handler.onError(err!);
        this.#next();
        return;
      }
      const socket = tracked.socket;
      const conn = new PooledConnection(this, tracked);
      this.#open.add(conn);
      this.#startSweep();
      socket.once('close', () => {
        this.#connections--;
        this.#open.delete(conn);
        this.#next();
      });
      if (this.#destroyed) {
        socket.destroy();
        slot?.release();
        handler.onError(this.#closed());
        return;
      }
      this.#serve(conn, options, handler, slot);
    });
  }

  /**
   * A free connection takes `options` when given, else the oldest waiter; a request whose
   * client left while it waited is dropped there (its handler aborts in onConnect, nothing is
   * written) and the next one is tried. Idle when nothing is left.
   */
  #serve(conn: PooledConnection, options?: Options, handler?: Handler, slot?: InFlightSlot | null): void {
    if (options !== undefined && conn.run(options, handler!, slot ?? null)) return;
    for (let w = this.#waiting.shift(); w !== undefined; w = this.#waiting.shift()) {
      if (conn.run(w.options, w.handler, w.slot)) return;
    }
    conn.idleSince = Date.now();
    this.#idle.push(conn);
  }

  /** A connection finished its exchange and may carry another. */
  release(conn: PooledConnection): void {
    if (this.#destroyed) {
      conn.socket.destroy();
      return;
    }
    this.#serve(conn);
  }

  /** A connection closed: the oldest waiter may now open a new one. */
  #next(): void {
    if (this.#destroyed) return;
    const w = this.#waiting.shift();
    if (w === undefined) return;
    const conn = this.#takeIdle();
    if (conn !== null) this.#serve(conn, w.options, w.handler, w.slot);
    else this.#connect(w.options, w.handler, w.slot);
  }

  #startSweep(): void {
    if (this.#sweep !== null) return;
    // One coarse timer per pool while it has connections or waiters (never a timer per request).
    this.#sweep = setInterval(() => this.#onSweep(), this.#sweepMs);
    this.#sweep.unref();
  }

  #onSweep(): void {
    const now = Date.now();
    const { queueWaitMs, streamIdleMs } = this.#opts.settings.timeouts;
    // Waiters are in arrival order: only the head can be the oldest.
    while (this.#waiting.length > 0 && now - this.#waiting[0]!.since >= queueWaitMs) {
      const w = this.#waiting.shift()!;
      w.slot?.release();
      w.handler.onError(new ProxyError('MESHLET_UPSTREAM_QUEUE_TIMEOUT', `${this.target.label}: no connection became free within ${queueWaitMs} ms (all ${this.#opts.settings.limits.maxConnectionsPerUpstream} busy; timeouts.queueWaitMs)`));
    }
    for (const conn of this.#open) conn.checkIdle(now, streamIdleMs);
    for (let i = this.#idle.length - 1; i >= 0; i--) {
      const conn = this.#idle[i]!;
      if (conn.socket.destroyed || now - conn.idleSince >= conn.idleLimitMs) {
        this.#idle.splice(i, 1);
        conn.socket.destroy();
      }
    }
    if (this.#open.size === 0 && this.#waiting.length === 0 && this.#sweep !== null) {
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
    for (const w of this.#waiting.splice(0)) {
      w.slot?.release();
      w.handler.onError(this.#closed());
    }
    return Promise.resolve();
  }

  /** For a request that meets a destroyed pool (the sidecar is shutting down). */
  #closed(): ProxyError {
    return new ProxyError('MESHLET_UPSTREAM_RESET', `${this.target.label}: the connection pool is closed (the sidecar is shutting down)`);
  }
}

/** One keep-alive connection and the exchange it is carrying, if any. */
class PooledConnection implements ResponseSink {
  readonly socket: net.Socket;
  /** Its entry in /connections: `requests` counts the exchanges it carried. */
  readonly tracked: TrackedConnection;
  readonly #pool: Http1Pool;
  readonly #parser: Http1ResponseParser;
  idleSince = 0;
  idleLimitMs: number;
  #handler: Handler | null = null;
  #slot: InFlightSlot | null = null;
  /** The request head went out (before that, an abort costs nothing and keeps the connection). */
  #started = false;
  /** The client left after its complete request went out: the response is read and dropped. */
  #discarding = false;
  #discarded = 0;
  #body: Readable | null = null;
  #bodyDone = true;
  /** The request body is paused because the next hop is not reading (socket backpressure). */
  #bodyPaused = false;
  #bodyChunked = false;
  #bodyExpected = -1;
  #bodySent = 0;
  #finished = true;
  #reusable = false;
  /** Bumped by every byte movement; the sweep compares it with what it saw last time. */
  #activity = 0;
  #sweptActivity = -1;
  #quietSince = 0;

  constructor(pool: Http1Pool, tracked: TrackedConnection) {
    const socket = tracked.socket;
    this.#pool = pool;
    this.socket = socket;
    this.tracked = tracked;
    this.idleLimitMs = pool.settings.timeouts.idleMs;
    this.#parser = new Http1ResponseParser(this, pool.settings.limits.maxHeaderBytes * 4);
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('error', this.#onSocketError);
    socket.on('close', this.#onClose);
  }

  /** Busy with an exchange (its own, or draining a cancelled one's response). */
  get busy(): boolean {
    return this.#handler !== null || this.#discarding;
  }

  /**
   * Starts an exchange. False when the handler aborted in onConnect (its client left while the
   * request waited): nothing was written, the handler got onError, the connection is still clean.
   */
  run(options: Options, handler: Handler, slot: InFlightSlot | null): boolean {
    this.#handler = handler;
    this.#slot = slot;
    this.#started = false;
    this.#finished = false;
    this.#reusable = false;
    this.#activity++;
    const method = options.method;
    // Per exchange, so a late abort from a finished exchange (its client went away while the
    // response was flushing) can never cut the next exchange on this reused connection. The
    // second argument is this connection's /connections entry: outbound, the request is
    // labelled with the server identity it verified.
    handler.onConnect(() => {
      if (this.#handler === handler) this.#abort(aborted());
    }, this.tracked);
    if (this.#handler !== handler) return false;
    this.#started = true;
    this.tracked.requests++;
    this.#parser.expect(method);
    let head = `${method} ${options.path} HTTP/1.1\r\n`;
    const headers = options.headers;
    let hasHost = false;
    let contentLength = -1;
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!;
      const value = headers[i + 1]!;
      if (name.length === 4 && name.toLowerCase() === 'host') hasHost = true;
      else if (name.length === 14 && name.toLowerCase() === 'content-length') contentLength = Number(value);
      head += `${name}: ${value}\r\n`;
    }
    if (!hasHost) head += `host: ${this.#pool.hostHeader}\r\n`;
    const body = options.body;
    this.#body = body;
    this.#bodySent = 0;
    this.#bodyExpected = contentLength;
    this.#bodyChunked = body !== null && contentLength === -1;
    this.#bodyPaused = false;
    if (this.#bodyChunked) head += 'transfer-encoding: chunked\r\n';
    else if (body === null && contentLength === -1 && PAYLOAD_METHODS.has(method)) head += 'content-length: 0\r\n';
    head += '\r\n';
    const socket = this.socket;
    socket.cork();
    socket.write(head, 'latin1');
    process.nextTick(uncork, socket);
    if (body === null) {
      this.#bodyDone = true;
      return true;
    }
    this.#bodyDone = false;
    body.on('data', this.#onBodyData);
    body.once('end', this.#onBodyEnd);
    body.once('error', this.#onBodyError);
    body.once('close', this.#onBodyClose);
    return true;
  }

  /**
   * The client went away (the handler's abort). Before the head went out: nothing reaches the
   * app. With half a request on the wire the connection is unusable and closed. With the whole
   * request out, the response is drained and the connection kept (DISCARD_LIMIT_BYTES).
   */
  #abort(err: ProxyError): void {
    const handler = this.#handler!;
    if (!this.#started) {
      this.#handler = null;
      this.#finished = true;
      this.#releaseSlot();
      handler.onError(err);
      return;
    }
    if (!this.#bodyDone) {
      this.#fail(err);
      return;
    }
    this.#handler = null;
    this.#resumeFor = null;
    this.#discarding = true;
    this.#discarded = 0;
    if (this.socket.isPaused()) this.socket.resume();
    handler.onError(err);
  }

  /**
   * Called by the pool's sweep: an exchange on which no byte moved either way for
   * `idleMs` is failed — MESHLET_REQUEST_TIMEOUT (408) when the proxy was waiting on the client
   * (its request body stalled while the app was ready for more, or it stopped reading the
   * response), else MESHLET_UPSTREAM_TIMEOUT (504). A drained cancelled exchange is just closed.
   */
  checkIdle(now: number, idleMs: number): void {
    if (!this.busy) return;
    if (this.#activity !== this.#sweptActivity) {
      this.#sweptActivity = this.#activity;
      this.#quietSince = now;
      return;
    }
    if (now - this.#quietSince < idleMs) return;
    if (this.#discarding) {
      this.socket.destroy();
      return;
    }
    const onClient = (!this.#bodyDone && !this.#bodyPaused) || this.socket.isPaused();
    this.#fail(idleTimeout(onClient, this.#pool.target.label, idleMs));
  }

  #releaseSlot(): void {
    const slot = this.#slot;
    if (slot !== null) {
      this.#slot = null;
      slot.release();
    }
  }

  // --- request body -------------------------------------------------------------------

  readonly #onBodyData = (chunk: Buffer): void => {
    this.#bodySent += chunk.length;
    this.#activity++;
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
      this.#bodyPaused = true;
      this.socket.once('drain', this.#resumeBody);
    }
  };

  readonly #resumeBody = (): void => {
    this.#bodyPaused = false;
    this.#activity++;
    this.#body?.resume();
  };

  readonly #onBodyEnd = (): void => {
    this.#bodyDone = true;
    this.#detachBody();
    if (this.#bodyChunked) this.socket.write('0\r\n\r\n');
    else if (this.#bodyExpected !== this.#bodySent) {
      this.#fail(badRequestBody(`it ended after ${this.#bodySent} bytes, its Content-Length said ${this.#bodyExpected}`));
      return;
    }
    if (this.#finished) this.#settle();
  };

  readonly #onBodyError = (err: Error): void => {
    this.#fail(badRequestBody(`it failed before its end: ${errorCode(err)}`, err));
  };

  readonly #onBodyClose = (): void => {
    if (!this.#bodyDone) this.#fail(badRequestBody('it was cut short by the client'));
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
    if (this.#handler === null && !this.#discarding) {
      // Bytes on an idle connection: nothing was asked; the connection cannot be trusted.
      this.socket.destroy();
      return;
    }
    this.#activity++;
    try {
      this.#parser.execute(chunk);
    } catch (err) {
      if (this.#discarding) this.socket.destroy();
      else this.#fail(err instanceof ResponseParseError ? badResponse(this.#pool.target.label, err) : relayFailure(this.#pool.target.label, err));
    }
  };

  /** A resume() from a finished exchange (a late 'drain') must not undo the next one's backpressure. */
  #resumeFor: Handler | null = null;
  readonly #resume = (): void => {
    if (this.#handler !== null && this.#handler === this.#resumeFor) {
      this.#activity++;
      this.socket.resume();
    }
  };

  onResponseHead(status: number, rawHeaders: Buffer[]): void {
    if (status >= 200) {
      const hint = keepAliveHintMs(rawHeaders);
      // Give up a pooled connection a second before the next hop would, so it is not reused as it closes.
      if (hint > 0) this.idleLimitMs = Math.max(0, Math.min(this.#pool.settings.timeouts.idleMs, hint - 1_000));
    }
    const handler = this.#handler;
    if (handler === null) return;
    if (status >= 200) this.#resumeFor = handler;
    if (!handler.onHeaders(status, rawHeaders, this.#resume)) this.socket.pause();
  }

  onResponseBody(chunk: Buffer): void {
    if (this.#discarding) {
      this.#discarded += chunk.length;
      if (this.#discarded > DISCARD_LIMIT_BYTES) this.socket.destroy();
      return;
    }
    const handler = this.#handler;
    if (handler !== null && !handler.onData(chunk)) this.socket.pause();
  }

  onResponseEnd(rawTrailers: Buffer[], reusable: boolean): void {
    this.#finished = true;
    this.#reusable = reusable;
    if (this.#discarding) {
      this.#discarding = false;
      this.#settle();
      return;
    }
    const handler = this.#handler;
    if (handler === null) return;
    // The response may end before the request body does (an early 4xx): the connection is reusable
    // only once both are complete; an unsent body makes it unusable.
    if (!this.#bodyDone) {
      this.#reusable = false;
      this.#detachBody();
    }
    this.#handler = null;
    handler.onComplete(rawTrailers.length === 0 ? null : rawTrailers.map((b) => b.toString('latin1')));
    this.#settle();
  }

  /** After a complete exchange: back to the pool, or closed. */
  #settle(): void {
    if (this.#handler !== null || !this.#finished || this.#discarding) return;
    this.#releaseSlot();
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
    if (this.#handler === null && !this.#discarding) {
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
    if (this.#handler === null) return;
    const label = this.#pool.target.label;
    this.#fail(
      this.#parser.started
        ? new ProxyError('MESHLET_UPSTREAM_RESET', `the connection to ${label} failed in the middle of the response: ${errorCode(err)}`, { cause: err })
        : new ClosedBeforeResponse(`the connection to ${label} failed before a response: ${errorCode(err)}`, { cause: err }),
    );
  };

  readonly #onClose = (): void => {
    if (this.#handler !== null) this.#fail(this.#closedError());
    this.#discarding = false;
    this.#releaseSlot();
  };

  #closedError(): ProxyError {
    return this.#parser.started
      ? new ProxyError('MESHLET_UPSTREAM_RESET', `${this.#pool.target.label} closed the connection in the middle of the response`)
      : new ClosedBeforeResponse(`${this.#pool.target.label} closed the connection before responding`);
  }

  #fail(err: ProxyError): void {
    const handler = this.#handler;
    this.#handler = null;
    this.#finished = true;
    this.#reusable = false;
    this.#discarding = false;
    this.#detachBody();
    this.socket.destroy();
    this.#releaseSlot();
    handler?.onError(err);
  }
}

function uncork(socket: net.Socket): void {
  socket.uncork();
}

function badResponse(label: string, err: ResponseParseError): ProxyError {
  return new ProxyError('MESHLET_UPSTREAM_BAD_RESPONSE', `unparsable response from ${label}: ${err.message}`, { cause: err });
}

/**
 * The caller's request body did not match its framing — shorter than its Content-Length (the
 * pool counts what it sends), or its stream failed or closed before its end: a failure of the
 * request, named here for every protocol the caller spoke; its connection is closed after the
 * answer (nothing after a framing doubt can be trusted).
 */
function badRequestBody(why: string, cause?: Error): ProxyError {
  return new ProxyError('MESHLET_BAD_REQUEST', `the request body did not match its framing: ${why}`, { cause, closeConnection: true });
}

/**
 * The handler's abort: the caller went away. Never answered (the handler that
 * aborts has no one left to answer); the request is incomplete as far as the app is concerned.
 */
function aborted(): ProxyError {
  return new ProxyError('MESHLET_BAD_REQUEST', 'request aborted');
}

/**
 * Relaying a response head or chunk to the caller threw (the caller's side refused it): the
 * exchange is cut as if the next hop had reset it, which is what the caller was always told.
 */
function relayFailure(label: string, err: unknown): ProxyError {
  return new ProxyError('MESHLET_UPSTREAM_RESET', `relaying the response of ${label} failed: ${errorCode(err as Error)}`, { cause: err });
}

/** A raw error's code (ECONNRESET, EPIPE…) for a message, else its message. */
function errorCode(err: Error): string {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : String(err?.message ?? err);
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
