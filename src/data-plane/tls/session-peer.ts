import { MalformedExtensionsError, readTlv, type Tlv } from '../identity/x509-extensions.ts';

/**
 * Fields of a serialized TLS session (OpenSSL's SSL_SESSION ASN.1, which `socket.getSession()`
 * returns), for what Node's sockets do not show.
 *
 * The server certificate a client-side session carries: on a resumed connection Node's client
 * socket shows no peer certificate at all (getPeerCertificate() is empty: OpenSSL keeps the
 * peer's leaf in the session, not its chain, and Node's client side reads the chain), and Node
 * does not call checkServerIdentity. The certificate is in the session itself — field `peer`
 * ([3] EXPLICIT Certificate). Node (24.x) puts its own header in front of a client session:
 * "\0nodejs:tls:session:1\0", a 16-bit length and the server name the session was
 * authenticated for.
 *
 * Anything unexpected (another header, a malformed structure, no such field) gives undefined:
 * the caller then refuses the resumed connection, does not cache the session, or reports the
 * field as unknown.
 */
const NODE_SESSION_PREFIX = Buffer.from('\0nodejs:tls:session:1\0', 'latin1');

/** The DER certificate in the `peer` field of a serialized session, or undefined. */
export function sessionPeerCertificate(session: Buffer | undefined): Buffer | undefined {
  const field = sessionField(session, PEER_FIELD);
  if (field === undefined) return undefined;
  const cert = tlvOrUndefined(field, 0);
  if (cert === undefined || cert.tag !== SEQUENCE || cert.end !== field.length) return undefined;
  return field;
}

/**
 * The TLS NamedGroup (IANA code point, e.g. 0x11EC for X25519MLKEM768) of the key exchange the
 * session's connection made — field `kex_group` ([19] EXPLICIT UINT32; Node 24's OpenSSL 3.5 writes it),
 * or undefined. OpenSSL sets it on both sides from the key_share the server chose, also on a
 * resumed TLS 1.3 connection (psk_dhe_ke: a fresh key exchange, whose group may differ from the
 * one of the full handshake that made the session). Node's server sockets show the group nowhere
 * else (getEphemeralKeyInfo() answers null there).
 */
export function sessionKeyExchangeGroup(session: Buffer | undefined): number | undefined {
  const field = sessionField(session, KEX_GROUP_FIELD);
  if (field === undefined) return undefined;
  const int = tlvOrUndefined(field, 0);
  // A DER INTEGER of a uint16: 1 to 3 content bytes (a leading 0 keeps 0x8000 and up positive).
  if (int === undefined || int.tag !== INTEGER || int.end !== field.length || int.end - int.start < 1 || int.end - int.start > 3) return undefined;
  let value = 0;
  for (let i = int.start; i < int.end; i++) value = value * 256 + field[i]!;
  return value > 0 && value <= 0xffff ? value : undefined;
}

/**
 * The content of one context-specific EXPLICIT field ([n], constructed: tag 0xa0 | n) of a
 * serialized session, or undefined when the session is malformed or has no such field.
 */
export function sessionField(session: Buffer | undefined, tag: number): Buffer | undefined {
  if (session === undefined) return undefined;
  let der = session;
  if (session.length > NODE_SESSION_PREFIX.length + 2 && session.subarray(0, NODE_SESSION_PREFIX.length).equals(NODE_SESSION_PREFIX)) {
    const nameLength = session.readUInt16BE(NODE_SESSION_PREFIX.length);
    der = session.subarray(NODE_SESSION_PREFIX.length + 2 + nameLength);
  }
  const outer = tlvOrUndefined(der, 0);
  if (outer === undefined || outer.tag !== SEQUENCE || outer.end !== der.length) return undefined;
  for (let at = outer.start; at < outer.end; ) {
    const field = tlvOrUndefined(der, at, outer.end);
    if (field === undefined) return undefined;
    if (field.tag === tag) return der.subarray(field.start, field.end);
    at = field.end;
  }
  return undefined;
}

const SEQUENCE = 0x30;
const INTEGER = 0x02;
/** [3] EXPLICIT, constructed, context-specific. */
const PEER_FIELD = 0xa3;
/** [19] EXPLICIT (OpenSSL's ssl_asn1.c: `ASN1_EXP_OPT_EMBED(SSL_SESSION_ASN1, kex_group, UINT32, 19)`). */
const KEX_GROUP_FIELD = 0xa0 | 19;

/** One DER TLV (x509-extensions.ts's reader), or undefined where that reader refuses the bytes. */
function tlvOrUndefined(buf: Buffer, at: number, limit = buf.length): Tlv | undefined {
  try {
    return readTlv(buf, at, limit);
  } catch (err) {
    if (err instanceof MalformedExtensionsError) return undefined;
    throw err;
  }
}
