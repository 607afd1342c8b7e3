import * as tls from 'node:tls';
import type { ConnectionGuard } from '../../../common/net/connection-guard.ts';
import type { ProxySettings } from '../config.ts';
import type { ConnectionDirection } from '../connection-registry.ts';
import type { ServerTls } from '../tls-dependency.ts';

export interface MtlsServerOptions {
  readonly tls: ServerTls;
  readonly settings: ProxySettings;
  /** Closes handshakes that fail or take longer than timeouts.tlsHandshakeMs (node only reports them). */
  readonly guard: ConnectionGuard;
  readonly observer?: { handshakeFailed?(direction: ConnectionDirection, err: unknown): void };
  /** ALPN offered (HTTP ports: h2 then http/1.1); none for opaque TCP, whose bytes are not HTTP. */
  readonly alpn?: readonly string[];
  /** Opaque TCP keeps half-closed streams (a client that shuts down its write side still reads). */
  readonly allowHalfOpen?: boolean;
  /** A connection whose handshake ended and whose client SVID verified: the caller's SPIFFE ID. */
  onVerified(socket: tls.TLSSocket, peer: string): void;
}

/**
 * The TLS step of every inbound listener (HTTP ports, PERMISSIVE ports' TLS callers, opaque TCP
 * ports): TLS 1.3, client SVID required — verified here once per connection (and by MeshTls's
 * fail-closed gate), so nothing after this step sees an unverified caller. A failed handshake
 * or verification is counted (handshakeFailed, direction inbound) and the socket destroyed.
 * The server does not listen by itself: the caller binds it (STRICT, opaque) or feeds it
 * sockets (PERMISSIVE, after detecting TLS).
 *
 * TLS 1.3 session tickets come with serverOptions(): MeshTls's ticket keys (replaced hourly and
 * on every SVID or bundle rotation, through attachServer), session lifetime and session ID
 * context, or none at all with MESHLET_TLS_SESSION_RESUMPTION=off. A resumed caller is verified
 * like any other (verifyClient reads the client certificate the session kept): the peer handed
 * to onVerified, and so to the policy, is the same SPIFFE ID (docs/tls.md "Session resumption").
 */
export function createMtlsServer(o: MtlsServerOptions): { server: tls.Server; detachTls: () => void } {
  const server = tls.createServer({
    ...o.tls.serverOptions(o.alpn ? { ALPNProtocols: [...o.alpn] } : undefined),
    handshakeTimeout: o.settings.timeouts.tlsHandshakeMs,
    // Every accepted leg: a reply must never wait for the peer's delayed ACK (~40 ms).
    noDelay: true,
    ...(o.allowHalfOpen ? { allowHalfOpen: true } : {}),
  });
  const detachTls = o.tls.attachServer(server);
  o.guard.closeFailedHandshakes(server);
  server.on('tlsClientError', (err) => o.observer?.handshakeFailed?.('inbound', err));
  server.on('secureConnection', (socket: tls.TLSSocket) => {
    let peer: string;
    try {
      peer = o.tls.verifyClient(socket).spiffeId.id;
    } catch (err) {
      // attachServer's gate may already have destroyed it; this keeps the failure counted.
      o.observer?.handshakeFailed?.('inbound', err);
      socket.destroy();
      return;
    }
    o.onVerified(socket, peer);
  });
  return { server, detachTls };
}
