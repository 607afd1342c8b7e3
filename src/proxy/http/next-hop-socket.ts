import type * as net from 'node:net';
import type * as tls from 'node:tls';
import type { ProxySettings } from '../config.ts';
import type { ConnectionDirection, ConnectionRegistry } from '../connection-registry.ts';
import { connectNextHop, originatedPeer, type UpstreamTarget } from '../upstream/next-hop-connect.ts';

/**
 * One tracked connection to a next hop, for the paths that do not go through the HTTP/1.1
 * pool: HTTP/2 sessions (src/proxy/h2/) and Upgrade tunnels (src/proxy/upgrade/). Connecting,
 * timeouts and failure naming are the pool's own (`connectNextHop`); this adds the
 * connection registry and a promise.
 */
export type NextHopTarget = UpstreamTarget;

export interface NextHopContext {
  readonly settings: ProxySettings;
  readonly registry: ConnectionRegistry;
  readonly direction: ConnectionDirection;
}

/** Resolves with a connected (for mTLS: handshaken and verified) socket; rejects with a ProxyError. */
export function connectTrackedNextHop(target: NextHopTarget, { settings, registry, direction }: NextHopContext): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    connectNextHop(target, settings.timeouts, (err, socket) => {
      if (err !== null || socket === null) return reject(err);
      const conn = registry.track(direction, 'originated', socket);
      if (target.tlsOptions) {
        conn.tlsVersion = (socket as tls.TLSSocket).getProtocol() ?? null;
        conn.peerIdentity = originatedPeer(target, socket);
      }
      resolve(socket);
    });
  });
}

/** The same for an Upgrade tunnel, whose connection carries that one request (counted on it). */
export function connectTunnelHop(target: NextHopTarget, ctx: NextHopContext): Promise<net.Socket> {
  return connectTrackedNextHop(target, ctx).then((socket) => {
    const upstream = ctx.registry.of(socket);
    if (upstream !== undefined) upstream.requests++;
    return socket;
  });
}
