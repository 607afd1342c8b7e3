import type * as net from 'node:net';
import type { TrackedConnection } from '../connection-registry.ts';
import { connectTrackedNextHop as connectTracked, type NextHopContext, type UpstreamTarget } from '../upstream/next-hop-connect.ts';

/**
 * One tracked connection to a next hop, for the paths that do not go through the HTTP/1.1
 * pool: HTTP/2 sessions (src/data-plane/proxy/h2/) and Upgrade tunnels (src/data-plane/proxy/upgrade/). Connecting,
 * timeouts, failure naming and the /connections entry are the pool's own
 * (next-hop-connect.ts `connectTrackedNextHop`); this is its promise form.
 */
export type NextHopTarget = UpstreamTarget;
export type { NextHopContext };

/**
 * Resolves with the connection's /connections entry once connected (for mTLS: handshaken and
 * verified; the socket is `.socket`); rejects with a ProxyError.
 */
export function connectTrackedNextHop(target: NextHopTarget, ctx: NextHopContext): Promise<TrackedConnection> {
  return new Promise((resolve, reject) => {
    connectTracked(target, ctx, (err, conn) => (conn !== null ? resolve(conn) : reject(err)));
  });
}

/** The same for an Upgrade tunnel, whose connection carries that one request (counted on it). */
export function connectTunnelHop(target: NextHopTarget, ctx: NextHopContext): Promise<net.Socket> {
  return connectTrackedNextHop(target, ctx).then((conn) => {
    conn.requests++;
    return conn.socket;
  });
}
