import { MalformedExtensionsError, readTlv, type Tlv } from '../identity/x509-extensions.ts';

/**
 * The server certificate a client-side TLS session carries.
 *
 * On a resumed connection Node's client socket shows no peer certificate at all
 * (getPeerCertificate() is empty: OpenSSL keeps the peer's leaf in the session, not its chain,
 * and Node's client side reads the chain), and Node does not call checkServerIdentity. The
 * certificate is in the session itself — OpenSSL's SSL_SESSION ASN.1, field `peer`
 * ([3] EXPLICIT Certificate) — which `socket.getSession()` serializes. Node (24.x) puts its own
 * header in front of it: "\0nodejs:tls:session:1\0", a 16-bit length and the server name the
 * session was authenticated for.
 *
 * Anything unexpected (another header, a malformed structure, no peer field) gives undefined:
 * the caller then refuses the resumed connection, or does not cache the session.
 */
const NODE_SESSION_PREFIX = Buffer.from('\0nodejs:tls:session:1\0', 'latin1');

/** The DER certificate in the `peer` field of a serialized session, or undefined. */
export function sessionPeerCertificate(session: Buffer | undefined): Buffer | undefined {
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
    if (field.tag === PEER_FIELD) {
      const cert = tlvOrUndefined(der, field.start, field.end);
      if (cert === undefined || cert.tag !== SEQUENCE || cert.end !== field.end) return undefined;
      return der.subarray(field.start, field.end);
    }
    at = field.end;
  }
  return undefined;
}

const SEQUENCE = 0x30;
/** [3] EXPLICIT, constructed, context-specific. */
const PEER_FIELD = 0xa3;

/** One DER TLV (x509-extensions.ts's reader), or undefined where that reader refuses the bytes. */
function tlvOrUndefined(buf: Buffer, at: number, limit = buf.length): Tlv | undefined {
  try {
    return readTlv(buf, at, limit);
  } catch (err) {
    if (err instanceof MalformedExtensionsError) return undefined;
    throw err;
  }
}
