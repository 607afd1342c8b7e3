import * as net from 'node:net';
import type { ConnectionRegistry, TrackedConnection } from '../connection-registry.ts';
import { spliceSockets } from '../tcp/byte-splice.ts';
import type { TcpObserver } from '../tcp/tcp-refusals.ts';
import type { OriginalDestination } from '../original-dst/original-dst.ts';

/** What an app's transparently redirected connection carries when it is not HTTP. */
export type PassthroughProtocol = 'tls' | 'opaque';

export interface PassthroughContext {
  readonly registry: ConnectionRegistry;
  readonly connectMs: number;
  readonly observer?: TcpObserver & { passthrough?(protocol: PassthroughProtocol): void };
  /** What /connections and the `peer` metric label say of the destination (`unmeshed` when discovery said so); default none. */
  readonly peer?: string;
}

/**
 * The app's own TLS, or a protocol that is not HTTP (a database, a message broker, SMTP…), to
 * wherever the app was going: the sidecar connects to the original destination and splices
 * the bytes both ways, untouched — the app's TLS stays end to end between the app and its
 * server, the sidecar never sees inside it (it keeps the SNI the app sent, for /connections
 * and, later, egress rules). Nothing is weakened: a server behind a STRICT meshlet sidecar
 * refuses such a connection as it refuses any non-mTLS caller, and an app speaking plaintext
 * TCP sent those bytes in plaintext before it was meshed too (docs/protocol-detection.md:
 * discovery will carry them over mTLS to meshed destinations).
 *
 * Half-close is kept (FIN passed on, the other direction still flows): the client socket is
 * switched to allowHalfOpen before any end can arrive.
 */
export function passThrough(client: net.Socket, clientConn: TrackedConnection, dst: OriginalDestination, protocol: PassthroughProtocol, sni: string | null, ctx: PassthroughContext): void {
  const destination = dst.family === 6 ? `[${dst.address}]:${dst.port}` : `${dst.address}:${dst.port}`;
  clientConn.passthrough = { protocol, destination, sni };
  client.allowHalfOpen = true;
  // Bytes wait in the kernel until the other leg exists.
  client.pause();
  const upstream = net.connect({ host: dst.address, port: dst.port, allowHalfOpen: true, noDelay: true });
  const timer = setTimeout(() => {
    ctx.observer?.refused?.('outbound', 'MESHLET_UPSTREAM_CONNECT_TIMEOUT');
    upstream.destroy();
    client.destroy();
  }, ctx.connectMs);
  const failed = (): void => {
    clearTimeout(timer);
    ctx.observer?.refused?.('outbound', 'MESHLET_UPSTREAM_CONNECT_FAILED');
    client.destroy();
  };
  upstream.once('error', failed);
  upstream.once('connect', () => {
    clearTimeout(timer);
    // From here on an error is a cut stream, handled by the splice (both legs destroyed).
    upstream.off('error', failed);
    const conn = ctx.registry.track('outbound', 'originated', upstream);
    conn.passthrough = clientConn.passthrough;
    if (ctx.peer !== undefined) conn.peerIdentity = ctx.peer;
    ctx.observer?.passthrough?.(protocol);
    spliceSockets(client, upstream, noop);
    client.resume();
  });
  client.once('close', () => {
    if (upstream.connecting) upstream.destroy();
  });
}

function noop(): void {
  // The registry forgets both legs when they close.
}
