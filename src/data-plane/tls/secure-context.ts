import type { SecureContextOptions } from 'node:tls';
import type { IdentitySnapshot } from '../identity/svid.ts';

/**
 * The one mesh TLS profile, for both directions: TLS 1.3 only (no downgrade to negotiate,
 * 1-RTT handshakes, encrypted certificates), our SVID chain (leaf first) and key, and as
 * CA store the roots of EVERY trust bundle we hold. OpenSSL then does RFC 5280 path
 * building natively during the handshake; the SPIFFE rule that a peer must chain to the
 * bundle of ITS OWN trust domain is checked afterwards on the presented chain
 * (verifyPeerChain), because a union store alone would let one trust domain's CA vouch for
 * another's IDs.
 */
export const MESH_TLS_VERSION = 'TLSv1.3';

export function meshContextOptions(snapshot: IdentitySnapshot): SecureContextOptions {
  return {
    cert: snapshot.svid.certChainPem,
    key: snapshot.svid.privateKeyPem,
    // An empty list (no bundles at all) trusts nothing, rather than Node's public roots.
    ca: [...snapshot.bundles.values()],
    minVersion: MESH_TLS_VERSION,
    maxVersion: MESH_TLS_VERSION,
  };
}
