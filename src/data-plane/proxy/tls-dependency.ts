import type * as tls from 'node:tls';

/**
 * What the proxy needs from the TLS layer (src/data-plane/tls/mesh-tls.ts `MeshTls` has this shape).
 * Declared here so the proxy depends on a small interface, not on how SVIDs are obtained.
 */
export interface ExpectedPeer {
  /** The exact SPIFFE ID the server must present. */
  readonly spiffeId?: string;
  /** Else: trust domains the server's ID must belong to. */
  readonly trustDomains?: readonly string[];
}

export interface VerifiedPeer {
  readonly spiffeId: { readonly id: string };
  readonly notAfter: Date;
}

/** The inbound listener's side: terminate mTLS and learn who called. */
export interface ServerTls {
  serverOptions(extra?: { ALPNProtocols?: string[] }): tls.TlsOptions;
  /** Keeps the server's SecureContext current across SVID rotations; returns detach. */
  attachServer(server: tls.Server): () => void;
  /** Verifies the client's SVID after the handshake; throws a coded error when it is not acceptable. */
  verifyClient(socket: tls.TLSSocket): VerifiedPeer;
}

/** The outbound pool's side: originate mTLS and check the server is who the destination says. */
export interface ClientTls {
  /** A failure (untrusted chain, wrong identity) surfaces as a coded error on the socket. */
  connectOptions(expected: ExpectedPeer, extra?: { ALPNProtocols?: string[]; servername?: string }): tls.ConnectionOptions;
  /**
   * tls.connect with those options, resuming the destination's TLS session when one is cached
   * for this expected identity; a resumed session's identity is checked before 'secureConnect'
   * (a refusal is the socket's 'error', as in a full handshake). Absent: tls.connect(connectOptions()).
   */
  connect?(target: { host: string; port: number }, expected: ExpectedPeer, extra?: { ALPNProtocols?: string[]; allowHalfOpen?: boolean }): tls.TLSSocket;
  /** The verified server identity of a connected socket (for /connections and metric labels). */
  verifyServer?(socket: tls.TLSSocket): VerifiedPeer;
}
