import * as net from 'node:net';
import type { TcpObserver } from './tcp-refusals.ts';
import { listenOn } from '../../../common/net/listen.ts';
import { ConnectionGuard } from '../../../common/net/connection-guard.ts';

/**
 * The catch-all's cap: it holds a connection only for the instant it takes to reset it, so a
 * small cap is enough and keeps a flood of undeclared-port connections from taking descriptors.
 */
export const CATCH_ALL_MAX_CONNECTIONS = 64;

export interface CatchAllListenerOptions {
  /** MESHLET_INBOUND_CATCHALL_PORT (default 15006); 0 = any free port, for tests. */
  readonly port: number;
  /** Default 0.0.0.0: iptables redirects callers from other pods here. */
  readonly host?: string;
  readonly observer?: TcpObserver;
  /** Cap and refusal counting (src/common/net/connection-guard.ts); default CATCH_ALL_MAX_CONNECTIONS, not counted. */
  readonly guard?: ConnectionGuard;
}

/**
 * Where iptables sends inbound TCP for every port the pod does NOT declare, so that no
 * connection reaches an app port without passing the sidecar (issue 4). Nothing here is ever
 * forwarded: each connection is reset at once (RST, not FIN — the caller learns immediately
 * that nobody serves the port, as if it were closed) and counted as MESHLET_UNDECLARED_PORT.
 * pauseOnConnect: not one byte of the caller's is read.
 */
export class CatchAllListener {
  readonly #opts: CatchAllListenerOptions;
  readonly #server: net.Server;
  #refused = 0;

  constructor(opts: CatchAllListenerOptions) {
    this.#opts = opts;
    this.#server = net.createServer({ pauseOnConnect: true }, (socket) => this.#onConnection(socket));
    // Nothing to wait for (the reset is immediate), so no setup deadline: only the cap.
    (opts.guard ?? new ConnectionGuard({ listener: 'catch_all', maxConnections: CATCH_ALL_MAX_CONNECTIONS })).protect(this.#server);
  }

  /** Connections reset so far. */
  get refusedCount(): number {
    return this.#refused;
  }

  start(): Promise<void> {
    return listenOn(this.#server, this.#opts.port, this.#opts.host ?? '0.0.0.0');
  }

  boundPort(): number {
    return (this.#server.address() as net.AddressInfo).port;
  }

  get listening(): boolean {
    return this.#server.listening;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.#server.listening) return resolve();
      this.#server.close(() => resolve());
    });
  }

  #onConnection(socket: net.Socket): void {
    this.#refused++;
    this.#opts.observer?.refused?.('inbound', 'MESHLET_UNDECLARED_PORT');
    // A reset socket can still report ECONNRESET/EPIPE; nobody needs to hear it.
    socket.on('error', () => {});
    socket.resetAndDestroy();
  }
}
