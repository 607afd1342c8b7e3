import { constants as cryptoConstants, createHash } from 'node:crypto';
import type { SecureContextOptions } from 'node:tls';
import type { IdentitySnapshot } from '../identity/svid.ts';
import { DEFAULT_KEY_EXCHANGE, keyExchangeGroups, type KeyExchangeMode } from './key-exchange.ts';

/**
 * The one mesh TLS profile, for both directions: TLS 1.3 only (no downgrade to negotiate,
 * 1-RTT handshakes, encrypted certificates), the key exchange groups of the
 * MESHLET_TLS_KEY_EXCHANGE setting (hybrid X25519MLKEM768 first by default), our SVID chain
 * (leaf first) and key, and as CA store the roots of EVERY trust bundle we hold. OpenSSL then does RFC 5280 path
 * building natively during the handshake; the SPIFFE rule that a peer must chain to the
 * bundle of ITS OWN trust domain is checked afterwards on the presented chain
 * (verifyPeerChain), because a union store alone would let one trust domain's CA vouch for
 * another's IDs.
 */
export const MESH_TLS_VERSION = 'TLSv1.3';

/**
 * How the server side of this context treats TLS 1.3 session tickets (docs/tls.md "Session
 * resumption"). `off`: no session is ever resumed (SSL_OP_NO_TICKET: in TLS 1.3 OpenSSL then
 * issues only stateful tickets, and Node keeps no server-side session cache to find them in).
 */
export type TicketSettings =
  | { readonly resumption: 'on'; readonly ticketKeys: Buffer; readonly sessionTimeoutSeconds: number }
  | { readonly resumption: 'off' };

export function meshContextOptions(snapshot: IdentitySnapshot, tickets: TicketSettings = { resumption: 'off' }, keyExchange: KeyExchangeMode = DEFAULT_KEY_EXCHANGE): SecureContextOptions {
  return {
    cert: snapshot.svid.certChainPem,
    key: snapshot.svid.privateKeyPem,
    // An empty list (no bundles at all) trusts nothing, rather than Node's public roots.
    ca: [...snapshot.bundles.values()],
    minVersion: MESH_TLS_VERSION,
    maxVersion: MESH_TLS_VERSION,
    // The named groups offered (client) and accepted (server), in OpenSSL 3.5's tuple syntax
    // (key-exchange.ts; docs/tls.md "Key exchange").
    ecdhCurve: keyExchangeGroups(keyExchange),
    // Sessions belong to this identity material: a session made under another SVID or other
    // bundles does not resume here even if its ticket could be decrypted (OpenSSL compares the
    // session ID context stored in the session with the server's).
    sessionIdContext: identityMaterialDigest(snapshot),
    ...(tickets.resumption === 'on'
      ? { ticketKeys: tickets.ticketKeys, sessionTimeout: tickets.sessionTimeoutSeconds }
      : { secureOptions: cryptoConstants.SSL_OP_NO_TICKET }),
  };
}

/** 32 hex characters (OpenSSL's session ID context holds at most 32 bytes) naming the SVID chain and every bundle. */
function identityMaterialDigest(snapshot: IdentitySnapshot): string {
  const hash = createHash('sha256').update(snapshot.svid.certChainPem);
  for (const [trustDomain, pem] of [...snapshot.bundles].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) hash.update(`\n${trustDomain}\n`).update(pem);
  return hash.digest('hex').slice(0, 32);
}
