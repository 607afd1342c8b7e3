import * as net from 'node:net';
import * as tls from 'node:tls';
import { ProxyError } from '../http/errors.ts';
import { MeshletError } from '../../../common/errors/meshlet-error.ts';
import type { ProxySettings, ProxyTimeouts } from '../config.ts';
import type { ConnectionDirection, ConnectionRegistry, TrackedConnection } from '../connection-registry.ts';

/** One next hop: the local app (plain TCP on loopback), a plaintext destination, or a peer sidecar (mTLS). */
export interface UpstreamTarget {
  /** Names the hop in error messages ("app port 8080", "peer sidecar … for orders:80 (spiffe://…)"). */
  readonly label: string;
  readonly host: string;
  readonly port: number;
  /** Present: originate mTLS with these options (ClientTls.connectOptions; asked per new connection, so rotation applies). */
  readonly tlsOptions?: () => tls.ConnectionOptions;
  /**
   * With tlsOptions: makes the mTLS connection instead of tls.connect(tlsOptions()) — ClientTls.connect,
   * which resumes the destination's TLS session and checks a resumed session's identity itself.
   */
  readonly connectTls?: (socketOptions: { allowHalfOpen?: boolean }) => tls.TLSSocket;
  /** With tlsOptions: the server's verified SPIFFE ID once connected, for /connections and metric labels. */
  readonly peerIdentity?: (socket: tls.TLSSocket) => string | null;
  /**
   * With tlsOptions and peerIdentity: the verified server identity must pass this, else the
   * connection fails as MESHLET_UPSTREAM_IDENTITY_REJECTED — for a destination served by
   * several exact identities (discovery), where the handshake can only pin the trust domain.
   */
  readonly acceptPeer?: (spiffeId: string) => boolean;
  /** Without tlsOptions: what /connections and the `peer` metric label say of this plaintext hop (`unmeshed`); default none (null). */
  readonly plaintextPeer?: string;
  /**
   * With tlsOptions: hears every failed handshake with this hop (the raw error: a rejected
   * server SVID, an unknown CA, an alert, the handshake timeout) once per connection attempt —
   * meshlet_tls_handshake_failures_total{direction="outbound"}.
   */
  readonly handshakeFailed?: (err: Error) => void;
}

/** What making a tracked connection to a next hop needs: the timeouts, and where connections are listed. */
export interface NextHopContext {
  readonly settings: ProxySettings;
  readonly registry: ConnectionRegistry;
  readonly direction: ConnectionDirection;
}

/** The verified peer of an originated mTLS connection, or null when unknown (plaintext, no hook). */
function originatedPeer(target: UpstreamTarget, socket: net.Socket): string | null {
  if (!target.peerIdentity) return null;
  try {
    return target.peerIdentity(socket as tls.TLSSocket);
  } catch {
    return null;
  }
}

export type NextHopConnected = (err: ProxyError | null, socket: net.Socket | null) => void;
export type TrackedNextHopConnected = (err: ProxyError | null, conn: TrackedConnection | null) => void;

/**
 * THE way to make a tracked connection to a next hop — used by the HTTP/1.1 pool (http1-pool.ts),
 * the HTTP/2 session pool, Upgrade tunnels (through http/next-hop-socket.ts) and transparent
 * opaque TCP to a meshed destination (outbound/mesh-tcp.ts, half-open kept): connectNextHop,
 * then the connection is tracked in /connections ONCE, as `originated`, with the TLS version and
 * the verified server identity filled in the same tick (before the registry's onOpened hears of
 * it), and handed over as that TrackedConnection (its `socket` is the connection).
 */
export function connectTrackedNextHop(target: UpstreamTarget, { settings, registry, direction }: NextHopContext, done: TrackedNextHopConnected, socketOptions: { allowHalfOpen?: boolean } = {}): void {
  connectNextHop(target, settings.timeouts, (err, socket) => {
    if (err !== null || socket === null) {
      done(err ?? new ProxyError('MESHLET_INTERNAL', `${target.label}: connected without a socket`), null);
      return;
    }
    const conn = registry.track(direction, 'originated', socket);
    if (target.tlsOptions) {
      conn.tlsVersion = (socket as tls.TLSSocket).getProtocol() ?? null;
      conn.peerIdentity = originatedPeer(target, socket);
    } else if (target.plaintextPeer !== undefined) {
      conn.peerIdentity = target.plaintextPeer;
    }
    done(null, conn);
  }, socketOptions);
}

/**
 * Makes ONE new connection to a next hop — shared by the HTTP pool's connector and the opaque
 * TCP proxies, so every leg connects, times out and names its failures the same way.
 *
 * TCP_NODELAY always (a head and a body written as two segments must never wait on Nagle +
 * delayed ACK); one timer covering connect then handshake (per connection, never per request);
 * a failure named by the phase it happened in, as the ProxyError the client will see: refused,
 * timed out, handshake failed, or the peer's SVID rejected. On success the caller owns the
 * socket and its errors (this function's 'error' listener is removed first).
 */
export function connectNextHop(
  target: UpstreamTarget,
  timeouts: Pick<ProxyTimeouts, 'connectMs' | 'tlsHandshakeMs'>,
  done: NextHopConnected,
  socketOptions: { allowHalfOpen?: boolean } = {},
): net.Socket {
  const where = `${target.label} at ${target.host}:${target.port}`;
  let phase: 'connect' | 'handshake' = 'connect';
  let settled = false;
  const socket: net.Socket = target.tlsOptions
    ? target.connectTls
      ? target.connectTls(socketOptions)
      : tls.connect({ ...target.tlsOptions(), ...socketOptions, host: target.host, port: target.port })
    : net.connect({ ...socketOptions, host: target.host, port: target.port, noDelay: true });
  socket.setNoDelay(true);
  const fail = (err: Error): void => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    socket.destroy();
    if (phase === 'handshake') target.handshakeFailed?.(err);
    done(upstreamConnectFailure(err, phase, where), null);
  };
  let timer = setTimeout(
    () => fail(new ProxyError('MESHLET_UPSTREAM_CONNECT_TIMEOUT', `no connection to ${where} within ${timeouts.connectMs} ms`)),
    timeouts.connectMs,
  );
  const established = (): void => {
    if (settled) return;
    // A resumed session had no certificate exchange: its identity is what the TLS layer checked
    // before 'secureConnect' (ClientTls.connect). One it cannot vouch for is refused.
    if (target.tlsOptions) {
      const resumed = (socket as tls.TLSSocket).isSessionReused();
      if (resumed || target.acceptPeer) {
        const id = originatedPeer(target, socket);
        if (resumed && id === null) {
          return fail(new ProxyError('MESHLET_UPSTREAM_IDENTITY_REJECTED', `peer at ${where} resumed a TLS session whose identity was not verified`));
        }
        if (target.acceptPeer && (id === null || !target.acceptPeer(id))) {
          return fail(new ProxyError('MESHLET_UPSTREAM_IDENTITY_REJECTED', `peer at ${where} presented ${id ?? 'no verified identity'}, not one of the identities expected there`));
        }
      }
    }
    settled = true;
    clearTimeout(timer);
    socket.off('error', fail);
    done(null, socket);
  };
  socket.once('connect', () => {
    if (!target.tlsOptions) return established();
    phase = 'handshake';
    clearTimeout(timer);
    timer = setTimeout(
      () => fail(new ProxyError('MESHLET_UPSTREAM_TLS_TIMEOUT', `no mTLS handshake with ${where} within ${timeouts.tlsHandshakeMs} ms`)),
      timeouts.tlsHandshakeMs,
    );
  });
  if (target.tlsOptions) socket.once('secureConnect', established);
  socket.on('error', fail);
  return socket;
}

/** Names a failure to establish a connection, by the phase it happened in. */
function upstreamConnectFailure(err: Error, phase: 'connect' | 'handshake', where: string): ProxyError {
  if (err instanceof ProxyError) return err;
  const code = (err as { code?: unknown }).code;
  if (phase === 'connect') {
    return new ProxyError('MESHLET_UPSTREAM_CONNECT_FAILED', `cannot connect to ${where}: ${String(code ?? err.message)}`, { cause: err });
  }
  // The TLS layer reports a rejected peer SVID as a coded MeshletError (TLS_PEER_*, SVID_*);
  // anything else (an alert from the peer, a protocol mismatch) is a plain handshake failure.
  if (err instanceof MeshletError) {
    return new ProxyError('MESHLET_UPSTREAM_IDENTITY_REJECTED', `peer at ${where} rejected: ${err.code}: ${err.message}`, { cause: err });
  }
  return new ProxyError('MESHLET_UPSTREAM_TLS_FAILED', `mTLS handshake with ${where} failed: ${String(code ?? err.message)}`, { cause: err });
}
