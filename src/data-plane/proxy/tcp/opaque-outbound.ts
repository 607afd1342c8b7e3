import * as net from 'node:net';
import type * as tls from 'node:tls';
import { resolveProxySettings, type ProxySettings } from '../config.ts';
import { ConnectionRegistry } from '../connection-registry.ts';
import type { ClientTls, ExpectedPeer } from '../tls-dependency.ts';
import { connectNextHop } from '../upstream/next-hop-connect.ts';
import { spliceSockets } from './byte-splice.ts';
import { meshTarget } from '../outbound/mesh-target.ts';
import { addressOf, factsFromConfig, type DestinationPolicy } from '../outbound/destination-policy.ts';
import { TcpSessionSet } from './tcp-session-set.ts';
import type { DecidedConnections } from './decided-connections.ts';
import { tcpRefusalCode, type TcpObserver } from './tcp-refusals.ts';
import { listenOn } from '../../../common/net/listen.ts';
import { ConnectionGuard, DEFAULT_MAX_CONNECTIONS } from '../../../common/net/connection-guard.ts';

/**
 * One explicit opaque TCP mapping. Node cannot read SO_ORIGINAL_DST, so a transparently
 * redirected non-HTTP connection carries no destination the sidecar can see (HTTP names its
 * own in Host). Each opaque destination therefore gets its own local listener: the app dials
 * 127.0.0.1:<listenPort> (or an iptables rule redirects that destination's port to it).
 */
export interface OpaqueTcpMapping {
  readonly listenPort: number;
  readonly destination: {
    /** The peer sidecar's opaque TCP listener (its OpaqueTcpProxy port). */
    readonly host: string;
    readonly port: number;
    /** Who must answer there; a mesh destination always names its identity. */
    readonly expected: ExpectedPeer;
    /** For logs and the /connections list; default `host:port`. */
    readonly name?: string;
  };
}

export interface OpaqueTcpOutboundOptions {
  readonly tls: ClientTls;
  readonly listeners: readonly OpaqueTcpMapping[];
  /** Default 127.0.0.1: the app's own traffic only. */
  readonly listenHost?: string;
  readonly settings?: ProxySettings;
  readonly registry?: ConnectionRegistry;
  readonly observer?: TcpObserver;
  /**
   * Cap and refusal counting of every mapping's listener (src/common/net/connection-guard.ts); default
   * DEFAULT_MAX_CONNECTIONS per listener, not counted. The app's side has no handshake of its own:
   * its setup is the peer leg, bounded by timeouts.connectMs and timeouts.tlsHandshakeMs.
   */
  readonly guard?: ConnectionGuard;
  /** The client side of the policy: each connection is decided before the peer is dialled; a refusal closes it (MESHLET_DENIED). */
  readonly clientPolicy?: DestinationPolicy;
  /** Where allowed connections wait to be decided again when the policy changes (the sidecar's); absent: decided once. */
  readonly decided?: DecidedConnections;
}

const KEEPALIVE_DELAY_MS = 60_000;

interface MappingListener {
  readonly mapping: OpaqueTcpMapping;
  readonly server: net.Server;
}

/**
 * Outbound for opaque TCP: every connection the app makes to a mapping's listener becomes an
 * mTLS connection (TLS 1.3, our SVID, the destination's expected identity checked, no ALPN) to
 * the peer sidecar's opaque port, and the bytes are spliced both ways. Never plaintext: a
 * failed connect or handshake closes the app's connection (counted with the HTTP catalog's
 * code for the same failure).
 */
export class OpaqueTcpOutbound {
  readonly registry: ConnectionRegistry;
  readonly #opts: OpaqueTcpOutboundOptions;
  readonly #settings: ProxySettings;
  readonly #listeners: MappingListener[] = [];
  readonly #sessions = new TcpSessionSet();

  constructor(opts: OpaqueTcpOutboundOptions) {
    this.#opts = opts;
    this.#settings = opts.settings ?? resolveProxySettings();
    this.registry = opts.registry ?? new ConnectionRegistry();
    const guard = opts.guard ?? new ConnectionGuard({ listener: 'outbound_tcp', maxConnections: DEFAULT_MAX_CONNECTIONS });
    for (const mapping of opts.listeners) {
      const server = guard.protect(net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }));
      server.on('connection', (socket: net.Socket) => this.#onConnection(socket, mapping));
      this.#listeners.push({ mapping, server });
    }
  }

  async start(): Promise<void> {
    const host = this.#opts.listenHost ?? '127.0.0.1';
    await Promise.all(this.#listeners.map((l) => listenOn(l.server, l.mapping.listenPort, host)));
  }

  boundPorts(): { listenPort: number; destination: string }[] {
    return this.#listeners.map((l) => ({ listenPort: (l.server.address() as net.AddressInfo).port, destination: nameOf(l.mapping) }));
  }

  get openSessions(): number {
    return this.#sessions.size;
  }

  async drain(): Promise<number> {
    for (const l of this.#listeners) if (l.server.listening) l.server.close();
    return this.#sessions.drain(this.#settings.timeouts.drainMs);
  }

  #onConnection(socket: net.Socket, mapping: OpaqueTcpMapping): void {
    socket.on('error', () => socket.destroy());
    const policy = this.#opts.clientPolicy;
    if (policy !== undefined) {
      const { host, port, expected } = mapping.destination;
      // The mapping names the destination (the app dialled a local port): its host is the name, its
      // expected identity the facts. The operator wrote that name and it is what is dialled.
      const facts = { ...factsFromConfig(host, port, expected), name: addressOf(host) === null ? host.toLowerCase() : null };
      if (policy.connection(facts, true) === 'deny') {
        this.#opts.observer?.refused?.('outbound', 'MESHLET_DENIED');
        socket.destroy();
        return;
      }
      // Decided again, with the same facts, whenever the policy changes.
      this.#opts.decided?.add(socket, 'outbound', () => policy.reconsider(facts, true));
    }
    socket.setKeepAlive(true, KEEPALIVE_DELAY_MS);
    const accepted = this.registry.track('outbound', 'accepted', socket);
    const session = this.#sessions.open(socket);
    socket.once('close', () => {
      if (session.length === 1) this.#sessions.close(session);
    });
    const { destination } = mapping;
    const who = destination.expected.spiffeId ?? `trust domain ${destination.expected.trustDomains?.join('|')}`;
    const target = meshTarget(
      this.#opts.tls,
      { label: `peer sidecar for ${nameOf(mapping)} (${who}, opaque TCP)`, host: destination.host, port: destination.port },
      { expected: destination.expected },
      null,
      (err) => this.#opts.observer?.handshakeFailed?.('outbound', err),
    );
    connectNextHop(target, this.#settings.timeouts, (err, peer) => {
      if (err !== null || peer === null) {
        this.#sessions.close(session);
        this.#opts.observer?.refused?.('outbound', err === null ? 'MESHLET_INTERNAL' : tcpRefusalCode(err));
        socket.destroy();
        return;
      }
      if (socket.destroyed) {
        peer.destroy();
        this.#sessions.close(session);
        return;
      }
      session.push(peer);
      peer.setKeepAlive(true, KEEPALIVE_DELAY_MS);
      const originated = this.registry.track('outbound', 'originated', peer);
      originated.tlsVersion = (peer as tls.TLSSocket).getProtocol() ?? null;
      originated.peerIdentity = destination.expected.spiffeId ?? null;
      accepted.peerIdentity = originated.peerIdentity;
      spliceSockets(socket, peer, () => this.#sessions.close(session));
      socket.resume();
    }, { allowHalfOpen: true });
  }
}

function nameOf(mapping: OpaqueTcpMapping): string {
  return mapping.destination.name ?? `${mapping.destination.host}:${mapping.destination.port}`;
}
