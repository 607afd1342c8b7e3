import type { NextHopTarget } from '../http/next-hop-socket.ts';
import type { ClientTls, ExpectedPeer } from '../tls-dependency.ts';

/**
 * The mTLS next-hop target toward a meshed destination, for every way the outbound reaches one
 * (a configured mesh destination, one discovery names, transparent TCP inside mTLS): our SVID
 * asked per NEW connection (so a rotated one is used from the next connection on), the server's
 * identity verified in the handshake and reported for /connections and the `peer` label, the
 * TLS session of the destination and pin resumed when the TLS layer has one.
 * `alpn`: h2 or http/1.1 for HTTP, none for opaque bytes (the peer's opaque listener offers none).
 */
export function meshTarget(tls: ClientTls, where: { label: string; host: string; port: number }, pin: Pinned, alpn: string | null, handshakeFailed: (err: Error) => void): NextHopTarget {
  const alpnOptions = alpn === null ? undefined : { ALPNProtocols: [alpn] };
  return {
    label: where.label,
    host: where.host,
    port: where.port,
    tlsOptions: () => tls.connectOptions(pin.expected, alpnOptions),
    // Resumes the TLS session of this destination and pin when one is cached (docs/tls.md "Session resumption").
    ...(tls.connect ? { connectTls: (o) => tls.connect!({ host: where.host, port: where.port }, pin.expected, { ...alpnOptions, ...o }) } : {}),
    ...(tls.verifyServer ? { peerIdentity: (s) => tls.verifyServer!(s).spiffeId.id } : {}),
    ...(pin.acceptPeer ? { acceptPeer: pin.acceptPeer } : {}),
    handshakeFailed,
  };
}

/** What the handshake pins, and what is checked after it. */
export interface Pinned {
  readonly expected: ExpectedPeer;
  readonly acceptPeer?: (spiffeId: string) => boolean;
}

/**
 * The exact identities discovery names for a destination: one is pinned in the handshake;
 * several (a Service backed by several ServiceAccounts) pin their trust domain in the handshake,
 * then the verified ID must be one of them. Null for an empty list (nothing to trust).
 */
export function pinnedTo(identities: readonly string[]): Pinned | null {
  const [first] = identities;
  if (first === undefined) return null;
  if (identities.length === 1) return { expected: { spiffeId: first } };
  const allowed = new Set(identities);
  return { expected: { trustDomains: [new URL(first).host] }, acceptPeer: (id) => allowed.has(id) };
}
