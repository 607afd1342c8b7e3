import type * as http from 'node:http';
import type * as net from 'node:net';
import type * as tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { MeshletError } from '../errors/meshlet-error.ts';

/**
 * What every meshlet listener does against unauthenticated connection exhaustion (slowloris
 * and its TLS sibling, the half-sent ClientHello): a connection that has not finished setting
 * up — TLS handshake, request head, or the first bytes that tell its protocol — in the
 * listener's configured time is closed, and at most `maxConnections` are open at once on one
 * listener (node closes the next one at accept, before any JavaScript object exists for it).
 * Both refusals are counted through a ListenerObserver, by listener name.
 *
 * Three shapes of listener, one guard:
 *  - a tls.Server (STRICT ports, opaque TCP, the identity service's TLS): node's own
 *    `handshakeTimeout` measures the handshake, but on Node 24 it only emits 'tlsClientError'
 *    and closes nothing; `closeFailedHandshakes` closes it (and every other failed handshake);
 *  - an http/https Server (admin, injector webhook): node's `headersTimeout` measures the head
 *    from accept (https: from the end of the handshake, which `handshakeTimeout` bounds), checked
 *    every `connectionsCheckingInterval`; `httpServerOptions` sets both, `protectHttp` counts;
 *  - a net.Server whose connections meshlet sets up itself (PERMISSIVE ports and the outbound
 *    listener detect the protocol from the first bytes): `deadline` arms one timer per
 *    connection, until the listener says the connection is set up.
 * None of it runs per request.
 */

/** Why a listener closed a connection itself before serving it: the `reason` label. */
export type ConnectionRefusal = 'limit' | 'setup_timeout';
export const CONNECTION_REFUSALS: readonly ConnectionRefusal[] = ['limit', 'setup_timeout'];

/** Listener names (the `listener` label): a small fixed set, one per kind of listener. */
export type ListenerName = 'inbound' | 'inbound_tcp' | 'outbound' | 'outbound_tcp' | 'catch_all' | 'admin' | 'webhook' | 'identity';
export const LISTENER_NAMES: readonly ListenerName[] = ['inbound', 'inbound_tcp', 'outbound', 'outbound_tcp', 'catch_all', 'admin', 'webhook', 'identity'];

export interface ListenerObserver {
  /** A connection closed at accept (`limit`) or before it finished setting up (`setup_timeout`). */
  connectionRefused(listener: ListenerName, reason: ConnectionRefusal): void;
  /** The guard of a listener exists: exported as that listener's limit and open connections. */
  guarding?(guard: ConnectionGuard): void;
}

export class ConnectionGuardError extends MeshletError {}

/**
 * Default cap of one data-plane listener (one port). A connection still in its handshake costs
 * about 23 KB (3,000 silent connections measured ~70 MB), so 1024 of them stay near 24 MB,
 * inside the sidecar's default 256 MiB memory limit.
 */
export const DEFAULT_MAX_CONNECTIONS = 1024;

export interface ConnectionGuardOptions {
  readonly listener: ListenerName;
  /** Open connections one listener (one bound port) keeps at most; the next one is closed at accept. */
  readonly maxConnections: number;
  readonly observer?: ListenerObserver;
}

export class ConnectionGuard {
  readonly listener: ListenerName;
  readonly maxConnections: number;
  readonly #observer: ListenerObserver | undefined;
  readonly #servers: net.Server[] = [];

  constructor(opts: ConnectionGuardOptions) {
    if (!Number.isInteger(opts.maxConnections) || opts.maxConnections < 1) {
      throw new ConnectionGuardError('MESHLET_BAD_CONNECTION_LIMIT', `${opts.listener}: maxConnections must be a positive integer, got ${opts.maxConnections}`);
    }
    this.listener = opts.listener;
    this.maxConnections = opts.maxConnections;
    this.#observer = opts.observer;
    opts.observer?.guarding?.(this);
  }

  /** Caps `server` at maxConnections; the connections node closes at accept are counted as `limit`. */
  protect<S extends net.Server>(server: S): S {
    server.maxConnections = this.maxConnections;
    server.on('drop', () => this.refused('limit'));
    this.#servers.push(server);
    return server;
  }

  /**
   * For a tls.Server created with `handshakeTimeout`: a failed handshake is closed — a timeout
   * is only reported by node (counted here as `setup_timeout`), a protocol error already closes.
   */
  closeFailedHandshakes(server: tls.Server): void {
    server.on('tlsClientError', (err: Error & { code?: string }, socket: tls.TLSSocket) => {
      if (err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT') this.refused('setup_timeout');
      socket.destroy();
    });
  }

  /**
   * A deadline on a socket the listener sets up itself: destroyed and counted as
   * `setup_timeout` unless the returned function is called first (it is idempotent).
   */
  deadline(socket: net.Socket, timeoutMs: number): () => void {
    const timer = setTimeout(() => {
      if (socket.destroyed) return;
      this.refused('setup_timeout');
      socket.destroy();
    }, timeoutMs);
    const disarm = (): void => clearTimeout(timer);
    socket.once('close', disarm);
    return disarm;
  }

  /** Options for http.createServer / https.createServer: the request head must arrive within `headersTimeoutMs`. */
  static httpServerOptions(headersTimeoutMs: number): Pick<http.ServerOptions, 'headersTimeout' | 'requestTimeout' | 'connectionsCheckingInterval'> {
    return {
      headersTimeout: headersTimeoutMs,
      // node requires requestTimeout >= headersTimeout (0 = none); node's default is 300 s.
      requestTimeout: Math.max(headersTimeoutMs, 300_000),
      // node checks the deadlines on this period (default 30 s): a quarter keeps them honest.
      connectionsCheckingInterval: Math.max(10, Math.min(Math.ceil(headersTimeoutMs / 4), 30_000)),
    };
  }

  /**
   * Caps an http/https server and counts the heads node timed out (408) and, for https, the
   * handshakes it timed out. Node's own answers are kept: 408 for a slow head, 431 for an
   * oversized one, 400 for a bad one, then close.
   */
  protectHttp(server: http.Server): void {
    this.protect(server);
    server.on('clientError', (err: Error & { code?: string }, socket: Duplex) => {
      if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT' || err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT') this.refused('setup_timeout');
      const answer = HTTP_CLIENT_ERROR_ANSWERS[err.code ?? ''] ?? (err.code?.startsWith('HPE_') ? BAD_REQUEST : undefined);
      // As node does without a listener: the answer is written synchronously, then the socket goes.
      if (answer !== undefined && socket.writable && (socket as net.Socket).bytesWritten === 0) socket.write(answer);
      socket.destroy();
    });
  }

  /** Servers (bound ports) this guard protects. */
  get ports(): number {
    return this.#servers.length;
  }

  /** Open connections on every server this guard protects (its gauge reads this at scrape). */
  async openConnections(): Promise<number> {
    const counts = await Promise.all(
      this.#servers.map((s) => new Promise<number>((resolve) => s.getConnections((err, n) => resolve(err ? 0 : n)))),
    );
    return counts.reduce((a, b) => a + b, 0);
  }

  refused(reason: ConnectionRefusal): void {
    this.#observer?.connectionRefused(this.listener, reason);
  }
}

const BAD_REQUEST = 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n';
const HTTP_CLIENT_ERROR_ANSWERS: Readonly<Record<string, string>> = {
  ERR_HTTP_REQUEST_TIMEOUT: 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n',
  HPE_HEADER_OVERFLOW: 'HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n',
};
