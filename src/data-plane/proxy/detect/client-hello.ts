import { isIP } from 'node:net';

/**
 * A strict, bounds-checked reader of the first bytes of a TLS connection: the record layer
 * (RFC 8446 §5.1) carrying a ClientHello (RFC 8446 §4.1.2; the TLS 1.2 form, RFC 5246 §7.4.1.2,
 * is the same bytes), and in it the two extensions the sidecar wants without terminating the
 * app's own TLS: server_name (RFC 6066 §3), for metrics and egress rules, and ALPN (RFC 7301).
 *
 * It never throws, whatever the bytes (every read is checked against the bytes actually
 * there), and answers one of:
 *   - `{ complete: true, sni, alpn }`: a well-formed ClientHello was read whole;
 *   - `{ complete: false }`: what is there is a valid start of one; more bytes are needed;
 *   - `{ tls: false }`: these bytes are not a ClientHello (or a malformed one).
 * It decides `tls: false` as early as the bytes allow (a wrong record header on byte 1, 2 or 3,
 * a handshake type other than client_hello on byte 6), and never says `tls: false` for a
 * truncated well-formed ClientHello: a prefix of a valid hello is `complete: false`, always.
 *
 * Records. Real clients send the ClientHello in one record: the record limit is 2^14 bytes
 * (RFC 8446 §5.1) and a hello is far below it, even with post-quantum key shares (Chrome's
 * X25519MLKEM768 share is 1,216 bytes, its whole hello ~1.8 KB; Node 24 with OpenSSL 3.5 sends
 * that share by default, ~1.6 KB in all). RFC 8446 §5.1 still lets a sender split a handshake
 * message across records, and some censorship-circumvention tools do it on purpose (tiny
 * records, so that no single packet holds the SNI), so the reader reassembles a ClientHello
 * split across consecutive handshake records — but only within the first CLIENT_HELLO_WINDOW
 * bytes (one full record: 5 + 2^14). A hello that needs more than that stays
 * `complete: false` here; the caller, which buffers no more than the window either
 * (first-bytes.ts), calls it TLS without an SNI. Nothing beyond the window is ever looked at,
 * so a hostile length field cannot make anyone wait for, or buffer, more.
 *
 * Strictness (each one is a `tls: false`): record type must be handshake (22), record
 * version 0x0301..0x0304, record length 1..2^14, every record of the hello likewise (no other
 * record type interleaved, RFC 8446 §5.1); handshake type client_hello (1), its length within
 * what a ClientHello can be; legacy_version major 3; session id ≤ 32 bytes; cipher suites a
 * non-empty even length; 1..255 compression methods; extensions, when present, exactly fill
 * the rest of the message, each extension's length fits, no extension type twice (RFC 8446
 * §4.2 — two server_name extensions would let a client show one name to us and another to the
 * server); server_name a non-empty list with at most one host_name (RFC 6066 §3), which is a
 * DNS name (letters, digits, '-', '_', dots between non-empty labels of ≤ 63, ≤ 253 in all,
 * no trailing dot); ALPN a non-empty list of non-empty names. Bytes after the ClientHello
 * (a client may send early data records right behind it) are not looked at.
 *
 * SNI. Returned in lowercase (DNS names compare case-insensitively; metrics and egress rules
 * want one spelling). An IP literal in server_name is not permitted by RFC 6066 §3; browsers
 * and curl omit the extension instead, but Node 24 still sends it (with a DEP0123 warning,
 * for tls.connect({ servername: '10.0.0.1' })). It is reported as `sni: null`, the same as no
 * extension: an address is not a name, and egress rules by name must not match it. With
 * Encrypted Client Hello the name read here is the outer, public one, which is what a
 * middlebox is meant to see.
 *
 * ALPN names are opaque bytes (RFC 7301 §3.1; GREASE values are not ASCII), returned as
 * latin1 strings, one character per byte, in the client's order.
 */

/** One TLS record header: type(1) legacy_record_version(2) length(2). */
const RECORD_HEADER = 5;
/** RFC 8446 §5.1: "The length MUST NOT exceed 2^14 bytes." */
const MAX_RECORD_PAYLOAD = 2 ** 14;
/** The most bytes from the start of the connection this reader looks at: one full record. */
export const CLIENT_HELLO_WINDOW = RECORD_HEADER + MAX_RECORD_PAYLOAD;

const CONTENT_TYPE_HANDSHAKE = 0x16;
const HANDSHAKE_CLIENT_HELLO = 0x01;
const HANDSHAKE_HEADER = 4; // msg_type(1) length(3)

/**
 * The largest body a ClientHello can have, field by field (RFC 8446 §4.1.2): legacy_version 2,
 * random 32, legacy_session_id 1+32, cipher_suites 2+65534, legacy_compression_methods 1+255,
 * extensions 2+65535. A declared length above it is malformed, not merely large.
 */
const MAX_CLIENT_HELLO_BODY = 2 + 32 + (1 + 32) + (2 + 65534) + (1 + 255) + (2 + 65535);
/** The smallest: version, random, empty session id, one suite, one compression method. */
const MIN_CLIENT_HELLO_BODY = 2 + 32 + 1 + (2 + 2) + (1 + 1);

const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;
const NAME_TYPE_HOST_NAME = 0;

export type ClientHelloResult = { complete: true; sni: string | null; alpn: string[] } | { complete: false } | { tls: false };

const INCOMPLETE: ClientHelloResult = Object.freeze({ complete: false }) as ClientHelloResult;
const NOT_TLS: ClientHelloResult = Object.freeze({ tls: false }) as ClientHelloResult;

/** The record version bytes a ClientHello record may carry: 0x0301 (TLS 1.0, what TLS 1.3 clients write) .. 0x0304. */
function validRecordVersion(major: number, minor: number | undefined): boolean {
  return major === 0x03 && (minor === undefined || (minor >= 0x01 && minor <= 0x04));
}

export function parseClientHello(buf: Buffer): ClientHelloResult {
  // Nothing past the window is ever looked at (see the header comment).
  const input = buf.length > CLIENT_HELLO_WINDOW ? buf.subarray(0, CLIENT_HELLO_WINDOW) : buf;

  // Reassemble the handshake message from consecutive handshake records. `fragments` are
  // views into `input`; `handshakeLength` is the bytes of handshake data gathered so far.
  const fragments: Buffer[] = [];
  let handshakeLength = 0;
  /** 4 + the declared ClientHello length, once the handshake header has been seen. */
  let needed = -1;
  let offset = 0;
  while (needed < 0 || handshakeLength < needed) {
    // Record header, checked byte by byte so garbage is refused as soon as it shows.
    const available = input.length - offset;
    if (available < 1) return INCOMPLETE;
    if (input[offset] !== CONTENT_TYPE_HANDSHAKE) return NOT_TLS;
    if (available >= 2 && !validRecordVersion(input[offset + 1]!, available >= 3 ? input[offset + 2]! : undefined)) return NOT_TLS;
    if (available < RECORD_HEADER) return INCOMPLETE;
    const recordLength = input.readUInt16BE(offset + 3);
    if (recordLength === 0 || recordLength > MAX_RECORD_PAYLOAD) return NOT_TLS;
    const payloadStart = offset + RECORD_HEADER;
    const payloadEnd = Math.min(payloadStart + recordLength, input.length);
    const fragment = input.subarray(payloadStart, payloadEnd);
    fragments.push(fragment);
    handshakeLength += fragment.length;

    if (needed < 0) {
      // The handshake header may itself be split across records: look at the gathered bytes.
      const type = byteAt(fragments, 0);
      if (type !== undefined && type !== HANDSHAKE_CLIENT_HELLO) return NOT_TLS;
      if (handshakeLength >= HANDSHAKE_HEADER) {
        const bodyLength = (byteAt(fragments, 1)! << 16) | (byteAt(fragments, 2)! << 8) | byteAt(fragments, 3)!;
        if (bodyLength < MIN_CLIENT_HELLO_BODY || bodyLength > MAX_CLIENT_HELLO_BODY) return NOT_TLS;
        needed = HANDSHAKE_HEADER + bodyLength;
      }
    }
    if (payloadEnd < payloadStart + recordLength) {
      // This record is not all here yet; if what is here already holds the whole
      // ClientHello, there is no need to wait for the rest of the record.
      if (needed >= 0 && handshakeLength >= needed) break;
      return INCOMPLETE;
    }
    offset = payloadEnd;
  }

  const message = fragments.length === 1 ? fragments[0]! : Buffer.concat(fragments, handshakeLength);
  return parseBody(message.subarray(HANDSHAKE_HEADER, needed));
}

/** The ClientHello body, complete (all `body.length` bytes are the message). */
function parseBody(body: Buffer): ClientHelloResult {
  const r = new Reader(body);
  const legacyVersion = r.u16();
  if (legacyVersion === undefined || legacyVersion >> 8 !== 0x03) return NOT_TLS;
  if (!r.skip(32)) return NOT_TLS; // random
  const sessionId = r.u8();
  if (sessionId === undefined || sessionId > 32 || !r.skip(sessionId)) return NOT_TLS;
  const suites = r.u16();
  if (suites === undefined || suites === 0 || suites % 2 !== 0 || !r.skip(suites)) return NOT_TLS;
  const compression = r.u8();
  if (compression === undefined || compression === 0 || !r.skip(compression)) return NOT_TLS;

  let sni: string | null = null;
  let alpn: string[] = [];
  // TLS 1.2 lets a ClientHello end right here, without an extensions block (RFC 5246 §7.4.1.2).
  if (r.remaining() === 0) return { complete: true, sni, alpn };

  const extensionsLength = r.u16();
  if (extensionsLength === undefined || extensionsLength !== r.remaining()) return NOT_TLS;
  const seen = new Set<number>();
  while (r.remaining() > 0) {
    const type = r.u16();
    const length = r.u16();
    if (type === undefined || length === undefined) return NOT_TLS;
    const data = r.take(length);
    if (data === undefined || seen.has(type)) return NOT_TLS;
    seen.add(type);
    if (type === EXT_SERVER_NAME) {
      const name = parseServerName(data);
      if (name === false) return NOT_TLS;
      sni = name;
    } else if (type === EXT_ALPN) {
      const names = parseAlpn(data);
      if (names === false) return NOT_TLS;
      alpn = names;
    }
  }
  return { complete: true, sni, alpn };
}

/**
 * RFC 6066 §3: ServerNameList server_name_list<1..2^16-1>, each entry name_type(1) +
 * HostName<1..2^16-1>. Only host_name (0) is defined; like Go's crypto/tls, entries of another
 * type are skipped (their body has the same length-prefixed form) and a second host_name is
 * malformed ("MUST NOT contain more than one name of the same name_type"). An empty extension
 * is not allowed from a client. Returns the name, null (none, or an IP literal), or false.
 */
function parseServerName(data: Buffer): string | null | false {
  const r = new Reader(data);
  const listLength = r.u16();
  if (listLength === undefined || listLength === 0 || listLength !== r.remaining()) return false;
  let hostName: string | null | undefined;
  while (r.remaining() > 0) {
    const nameType = r.u8();
    const length = r.u16();
    if (nameType === undefined || length === undefined || length === 0) return false;
    const name = r.take(length);
    if (name === undefined) return false;
    if (nameType !== NAME_TYPE_HOST_NAME) continue;
    if (hostName !== undefined) return false;
    const text = hostNameText(name);
    if (text === false) return false;
    hostName = text;
  }
  return hostName ?? null;
}

/**
 * HostName is "the fully qualified DNS hostname of the server ... represented as a byte string
 * using ASCII encoding without a trailing dot" (RFC 6066 §3). Letters, digits, '-' and '_'
 * (underscores appear in real service names), labels of 1..63, 253 in all. An IP literal
 * (IPv4 or IPv6) is recognized first and reported as null.
 */
function hostNameText(bytes: Buffer): string | null | false {
  if (bytes.length > 253) return false;
  // An IP literal (IPv6 would fail the name syntax below on its ':'): not a name, not malformed.
  if (isIP(bytes.toString('latin1')) !== 0) return null;
  let labelLength = 0;
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i]!;
    if (c === 0x2e) {
      if (labelLength === 0) return false; // leading dot, empty label, or ".."
      labelLength = 0;
      continue;
    }
    const ok = (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x5f;
    if (!ok || ++labelLength > 63) return false;
  }
  if (labelLength === 0) return false; // trailing dot
  return bytes.toString('latin1').toLowerCase();
}

/** RFC 7301 §3.1: ProtocolName protocol_name_list<2..2^16-1>, each ProtocolName<1..2^8-1>. */
function parseAlpn(data: Buffer): string[] | false {
  const r = new Reader(data);
  const listLength = r.u16();
  if (listLength === undefined || listLength < 2 || listLength !== r.remaining()) return false;
  const names: string[] = [];
  while (r.remaining() > 0) {
    const length = r.u8();
    if (length === undefined || length === 0) return false;
    const name = r.take(length);
    if (name === undefined) return false;
    names.push(name.toString('latin1'));
  }
  return names;
}

/** The byte at `index` of the concatenation of `chunks`, without concatenating. */
function byteAt(chunks: readonly Buffer[], index: number): number | undefined {
  for (const chunk of chunks) {
    if (index < chunk.length) return chunk[index];
    index -= chunk.length;
  }
  return undefined;
}

/** A cursor that answers `undefined` instead of reading past the end: no read can throw. */
class Reader {
  readonly #buf: Buffer;
  #pos = 0;

  constructor(buf: Buffer) {
    this.#buf = buf;
  }

  remaining(): number {
    return this.#buf.length - this.#pos;
  }

  u8(): number | undefined {
    if (this.remaining() < 1) return undefined;
    return this.#buf[this.#pos++];
  }

  u16(): number | undefined {
    if (this.remaining() < 2) return undefined;
    const v = this.#buf.readUInt16BE(this.#pos);
    this.#pos += 2;
    return v;
  }

  skip(n: number): boolean {
    if (this.remaining() < n) return false;
    this.#pos += n;
    return true;
  }

  take(n: number): Buffer | undefined {
    if (this.remaining() < n) return undefined;
    const out = this.#buf.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    return out;
  }
}
