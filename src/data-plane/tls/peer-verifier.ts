import type { TrustBundles } from '../identity/svid.ts';
import { verifyX509Svid, type VerifiedPeer } from '../identity/svid-verify.ts';
import { TlsPeerError } from './errors.ts';

export type { VerifiedPeer } from '../identity/svid-verify.ts';

/**
 * The SPIFFE half of peer verification, after OpenSSL's handshake-time check against the
 * union of all bundles: the presented chain must lead to a root of the bundle of the
 * leaf's OWN trust domain, and the leaf must follow the X.509-SVID rules. verifyX509Svid
 * keeps per-certificate facts and verified signatures cached, so a peer seen before costs
 * microseconds (docs/tls.md has the figures; a verdict cache of our own on top measured no
 * faster, so there is none). Failures become TlsPeerError with the verifier's code.
 */
export function verifyPeerChain(chain: readonly Buffer[], bundles: TrustBundles, now?: Date): VerifiedPeer {
  try {
    return verifyX509Svid(chain, bundles, now);
  } catch (err) {
    const code = typeof (err as { code?: unknown }).code === 'string' ? (err as { code: string }).code : 'TLS_PEER_UNVERIFIED';
    throw new TlsPeerError(code, `peer certificate refused: ${(err as Error).message}`, { cause: err });
  }
}
