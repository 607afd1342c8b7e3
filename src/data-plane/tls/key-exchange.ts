import { createSecureContext, type TLSSocket } from 'node:tls';
import { TlsSetupError } from './errors.ts';
import { sessionKeyExchangeGroup } from './session-peer.ts';

/**
 * The TLS 1.3 key exchange between sidecars (MESHLET_TLS_KEY_EXCHANGE; docs/tls.md "Key
 * exchange"): which named groups each side offers and accepts, and which one a connection used.
 *
 * - `hybrid` (default): X25519MLKEM768 (IANA 0x11EC: X25519 and ML-KEM-768 together, secure if
 *   either is) is preferred, with a classical fallback for peers that lack it. A client sends
 *   two key shares, X25519MLKEM768 and X25519, so a classical server answers without a
 *   HelloRetryRequest; a server puts X25519MLKEM768 in a tuple of its own, so a client that
 *   supports it but sent only a classical key share is asked again for the hybrid one rather
 *   than settled with the classical group (OpenSSL 3.5's tuple rule: the first tuple holding a
 *   group both support wins, key shares decide only within a tuple).
 * - `classical`: X25519, then P-256 and P-384; no ML-KEM, one key share (X25519).
 * - `pq-only`: X25519MLKEM768 alone; a peer without it is refused (handshake failure reason
 *   `no_shared_group`).
 *
 * The lists are OpenSSL 3.5 group strings (SSL_CTX_set1_groups_list: `/` separates tuples, `*`
 * marks a group the client sends a key share for), given to Node as `ecdhCurve`. Node 24's own
 * default (`auto`: OpenSSL's built-in list) already prefers X25519MLKEM768; meshlet writes its
 * lists out so that what sidecars offer does not change with the OpenSSL a Node release ships,
 * and drops what no sidecar needs (X448, P-521, finite-field groups). Every TLS 1.3 peer must
 * implement P-256 (RFC 8446 §9.1), so the classical tuple reaches any of them.
 */
export const KEY_EXCHANGE_MODES = ['hybrid', 'classical', 'pq-only'] as const;
export type KeyExchangeMode = (typeof KEY_EXCHANGE_MODES)[number];
export const DEFAULT_KEY_EXCHANGE: KeyExchangeMode = 'hybrid';

export const KEY_EXCHANGE_GROUPS: Readonly<Record<KeyExchangeMode, string>> = Object.freeze({
  hybrid: '*X25519MLKEM768/*X25519:secp256r1:secp384r1',
  classical: 'X25519:secp256r1:secp384r1',
  'pq-only': 'X25519MLKEM768',
});

/** Names of the TLS NamedGroups (IANA "TLS Supported Groups" registry) a peer could negotiate. */
const GROUP_NAMES: ReadonlyMap<number, string> = new Map([
  [0x0017, 'secp256r1'],
  [0x0018, 'secp384r1'],
  [0x0019, 'secp521r1'],
  [0x001d, 'X25519'],
  [0x001e, 'X448'],
  [0x0100, 'ffdhe2048'],
  [0x0101, 'ffdhe3072'],
  [0x0102, 'ffdhe4096'],
  [0x0103, 'ffdhe6144'],
  [0x0104, 'ffdhe8192'],
  [0x0200, 'MLKEM512'],
  [0x0201, 'MLKEM768'],
  [0x0202, 'MLKEM1024'],
  [0x11eb, 'SecP256r1MLKEM768'],
  [0x11ec, 'X25519MLKEM768'],
  [0x11ed, 'SecP384r1MLKEM1024'],
]);

/** OpenSSL's names (what getEphemeralKeyInfo says) where they differ from IANA's. */
const OPENSSL_TO_IANA: ReadonlyMap<string, string> = new Map([['prime256v1', 'secp256r1']]);

/** The IANA name of a NamedGroup code point; `0x…` for one not in the table. */
export function groupName(codePoint: number): string {
  return GROUP_NAMES.get(codePoint) ?? `0x${codePoint.toString(16).padStart(4, '0')}`;
}

/**
 * The named group of a finished TLS handshake, by its IANA name ("X25519MLKEM768", "X25519",
 * "secp256r1", …), on either side; null when it cannot be told.
 *
 * Node 24 has no API for it on a server socket: getEphemeralKeyInfo() is client-only (a server
 * socket answers null) and getCipher() names no group. So the client side asks
 * getEphemeralKeyInfo() ({type: 'TLSGroup', name: 'X25519MLKEM768'} for the hybrid group,
 * {type: 'ECDH', name: 'X25519', size: 253} for a classical one), and the server side reads the
 * group OpenSSL records in the connection's session (session-peer.ts sessionKeyExchangeGroup;
 * ~3 µs to serialize the session, once per connection). Both answer for the connection itself,
 * resumed ones included (a TLS 1.3 resumption makes a fresh key exchange).
 */
export function negotiatedGroup(socket: TLSSocket): string | null {
  const info = socket.getEphemeralKeyInfo() as { name?: unknown } | null;
  if (info !== null && typeof info.name === 'string') return OPENSSL_TO_IANA.get(info.name) ?? info.name;
  const id = sessionKeyExchangeGroup(socket.getSession());
  return id === undefined ? null : groupName(id);
}

/** Settings whose groups this process's OpenSSL was seen to take (checked once each). */
const supported = new Set<KeyExchangeMode>();

/**
 * The OpenSSL group list of `mode`, once checked that `mode` is a known setting and that this
 * Node's OpenSSL implements its groups (X25519MLKEM768 needs OpenSSL 3.5; a Node built against
 * an older shared OpenSSL has none), so the sidecar refuses to start with a reason instead of
 * failing every handshake. Throws TlsSetupError TLS_BAD_KEY_EXCHANGE or
 * TLS_KEY_EXCHANGE_UNSUPPORTED.
 */
export function keyExchangeGroups(mode: KeyExchangeMode): string {
  if (!(KEY_EXCHANGE_MODES as readonly string[]).includes(mode)) {
    throw new TlsSetupError('TLS_BAD_KEY_EXCHANGE', `key exchange ${JSON.stringify(mode)} is not one of ${KEY_EXCHANGE_MODES.join(', ')}`);
  }
  const groups = KEY_EXCHANGE_GROUPS[mode];
  if (!supported.has(mode)) {
    try {
      createSecureContext({ ecdhCurve: groups });
    } catch (err) {
      throw new TlsSetupError(
        'TLS_KEY_EXCHANGE_UNSUPPORTED',
        `key exchange ${mode} (${groups}) is not available in this Node's OpenSSL ${process.versions.openssl}: ${(err as Error).message}${mode === 'classical' ? '' : ' (X25519MLKEM768 needs OpenSSL 3.5 or later; MESHLET_TLS_KEY_EXCHANGE=classical does without it)'}`,
        { cause: err },
      );
    }
    supported.add(mode);
  }
  return groups;
}
