import type * as net from 'node:net';
import type { TrackedConnection } from '../connection-registry.ts';
import type { NextHopContext } from '../http/next-hop-socket.ts';
import { spliceSockets } from '../tcp/byte-splice.ts';
import { tcpRefusalCode, type TcpObserver } from '../tcp/tcp-refusals.ts';
import type { ClientTls } from '../tls-dependency.ts';
import { connectTrackedNextHop } from '../upstream/next-hop-connect.ts';
import { meshTarget, pinnedTo } from './mesh-target.ts';

export interface MeshTcpTarget {
  readonly address: string;
  readonly port: number;
  /** The SPIFFE IDs discovery says serve there; the server must present one of them. */
  readonly identities: readonly string[];
}

/**
 * The app's own TLS or non-HTTP TCP to a destination discovery says is meshed: instead of
 * passing the bytes through in the clear (the peer's STRICT sidecar would refuse them), they
 * go inside an mTLS connection (TLS 1.3, our SVID, no ALPN: the peer's opaque listener offers
 * none) to the original destination — the peer pod's iptables bring it to its sidecar, which
 * authorizes the connection and splices to its app. The server must be one of `identities`
 * (one: pinned in the handshake; several: same trust domain in the handshake, then the
 * verified ID checked against the list: UpstreamTarget.acceptPeer). Never plaintext: any failure closes the app's
 * connection, counted with the catalog code of the failure.
 */
export function meshTcp(client: net.Socket, clientConn: TrackedConnection, target: MeshTcpTarget, tls: ClientTls, ctx: NextHopContext, observer: TcpObserver | undefined): void {
  const pin = pinnedTo(target.identities);
  if (pin === null) {
    observer?.refused?.('outbound', 'MESHLET_UNKNOWN_DESTINATION');
    client.destroy();
    return;
  }
  client.allowHalfOpen = true;
  client.pause();
  connectTrackedNextHop(
    meshTarget(tls, { label: `meshed destination ${target.address}:${target.port} (${target.identities.join('|')}, opaque TCP)`, host: target.address, port: target.port }, pin, null, (err) => observer?.handshakeFailed?.('outbound', err)),
    ctx,
    (err, upstream) => {
      if (err !== null || upstream === null) {
        observer?.refused?.('outbound', err === null ? 'MESHLET_INTERNAL' : tcpRefusalCode(err));
        client.destroy();
        return;
      }
      if (client.destroyed) {
        upstream.socket.destroy();
        return;
      }
      clientConn.peerIdentity = upstream.peerIdentity;
      spliceSockets(client, upstream.socket, noop);
      client.resume();
    },
    { allowHalfOpen: true },
  );
}

function noop(): void {
  // The registry forgets both legs when they close.
}
