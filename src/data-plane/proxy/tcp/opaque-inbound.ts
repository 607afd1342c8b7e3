import type * as tls from 'node:tls';
import type * as net from 'node:net';
import { resolveProxySettings, type ProxySettings } from '../config.ts';
import { ConnectionRegistry } from '../connection-registry.ts';
import type { ServerTls } from '../tls-dependency.ts';
import type { ConnectionAuthorizer } from './connection-authorizer.ts';
import { TcpSessionSet } from './tcp-session-set.ts';
import type { DecidedConnections } from './decided-connections.ts';
import type { TcpObserver } from './tcp-refusals.ts';
import { createMtlsServer } from '../inbound/mtls-server.ts';
import { authorizeAndSplice } from './app-splice.ts';
import { listenOn } from '../../../common/net/listen.ts';
import { ConnectionGuard, DEFAULT_MAX_CONNECTIONS } from '../../../common/net/connection-guard.ts';

/** One opaque TCP app port: callers' mTLS connections to `listenPort` become plain TCP to `appPort`. */
export interface OpaqueTcpPort {
  /** The sidecar port iptables redirects the app port to (0 = any free port, for tests). */
  readonly listenPort: number;
  readonly appPort: number;
}

export interface OpaqueTcpProxyOptions {
  readonly tls: ServerTls;
  readonly authorizer: ConnectionAuthorizer;
  readonly ports: readonly OpaqueTcpPort[];
  /** Default 0.0.0.0 (callers come from other pods). */
  readonly listenHost?: string;
  /** Where the app listens; default 127.0.0.1. */
  readonly appHost?: string;
  readonly settings?: ProxySettings;
  readonly registry?: ConnectionRegistry;
  readonly observer?: TcpObserver;
  /**
   * Cap and refusal counting of every opaque port (src/common/net/connection-guard.ts); default
   * DEFAULT_MAX_CONNECTIONS per port, not counted. The handshake must end within timeouts.tlsHandshakeMs.
   */
  readonly guard?: ConnectionGuard;
  /** Where allowed connections wait to be decided again when the policy changes (the sidecar's); absent: decided once. */
  readonly decided?: DecidedConnections;
}

interface PortListener {
  readonly port: OpaqueTcpPort;
  readonly server: tls.Server;
  readonly detachTls: () => void;
}

/**
 * Inbound for ports marked `tcp`: mTLS is terminated (TLS 1.3, client SVID required, no ALPN:
 * the bytes inside are not HTTP), the CONNECTION is authorized once with the policy (caller
 * and port — an opaque stream has no method or path), and on allow the bytes are spliced to
 * 127.0.0.1:<appPort> both ways. On deny the connection is closed before anything reaches
 * the app (the app never sees a connection).
 */
export class OpaqueTcpProxy {
  readonly registry: ConnectionRegistry;
  readonly #opts: OpaqueTcpProxyOptions;
  readonly #settings: ProxySettings;
  readonly #listeners: PortListener[] = [];
  readonly #sessions = new TcpSessionSet();
  readonly #appHost: string;

  constructor(opts: OpaqueTcpProxyOptions) {
    this.#opts = opts;
    this.#settings = opts.settings ?? resolveProxySettings();
    this.registry = opts.registry ?? new ConnectionRegistry();
    this.#appHost = opts.appHost ?? '127.0.0.1';
    const guard = opts.guard ?? new ConnectionGuard({ listener: 'inbound_tcp', maxConnections: DEFAULT_MAX_CONNECTIONS });
    for (const port of opts.ports) {
      const { server, detachTls } = createMtlsServer({
        tls: opts.tls,
        settings: this.#settings,
        guard,
        observer: opts.observer,
        // TCP_NODELAY is on (mtls-server.ts); it was off here, and the first reply of every new
        // connection waited behind the TLS 1.3 session tickets for the peer's delayed ACK, ~40 ms
        // (bench tcp-opaque-new-connections: 210 -> 461 connections/s).
        allowHalfOpen: true,
        onVerified: (socket, peer) => this.#onVerified(socket, peer, port),
      });
      guard.protect(server);
      this.#listeners.push({ port, server, detachTls });
    }
  }

  async start(): Promise<void> {
    const host = this.#opts.listenHost ?? '0.0.0.0';
    await Promise.all(this.#listeners.map((l) => listenOn(l.server, l.port.listenPort, host)));
  }

  boundPorts(): { listenPort: number; appPort: number }[] {
    return this.#listeners.map((l) => ({ listenPort: (l.server.address() as net.AddressInfo).port, appPort: l.port.appPort }));
  }

  /** Live spliced connections (and ones waiting for the app to accept). */
  get openSessions(): number {
    return this.#sessions.size;
  }

  /** Stop accepting; let open streams end on their own up to timeouts.drainMs; cut the rest. Returns connections cut. */
  async drain(): Promise<number> {
    for (const l of this.#listeners) {
      if (l.server.listening) l.server.close();
      l.detachTls();
    }
    return this.#sessions.drain(this.#settings.timeouts.drainMs);
  }

  #onVerified(socket: tls.TLSSocket, peer: string, port: OpaqueTcpPort): void {
    authorizeAndSplice(socket, peer, port.appPort, {
      authorizer: this.#opts.authorizer,
      appHost: this.#appHost,
      settings: this.#settings,
      registry: this.registry,
      sessions: this.#sessions,
      ...(this.#opts.observer ? { observer: this.#opts.observer } : {}),
      ...(this.#opts.decided ? { decided: this.#opts.decided } : {}),
    });
  }

}
