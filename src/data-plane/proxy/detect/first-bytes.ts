import type { Socket } from 'node:net';
import { CLIENT_HELLO_WINDOW, parseClientHello } from './client-hello.ts';

/**
 * What a client speaks, read from its first bytes, for a port whose protocol nothing declared
 * (port-protocol.ts says 'detect'). docs/protocol-detection.md has the whole picture.
 *
 *   - TLS: a handshake record (0x16, then 0x03 0x01..0x04) carrying a ClientHello, read whole
 *     (client-hello.ts) for its SNI and ALPN. The app's own TLS is never terminated: the
 *     caller passes it on untouched; the SNI is for metrics and egress rules.
 *   - h2: the exact HTTP/2 client connection preface, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
 *     (RFC 9113 §3.4, prior knowledge: what gRPC and node:http2 send to a plaintext target).
 *   - http1: a request line "METHOD SP request-target SP HTTP/1.d" (RFC 9112 §3): a method
 *     token (RFC 9110 §5.6.2 tchar), one space, a target of visible bytes, one space, then
 *     "HTTP/1." and a digit. The CRLF after it is not waited for.
 *   - opaque: anything else, decided the moment a byte rules out all three above (binary
 *     protocols, Redis "*1\r\n", Postgres' startup message: usually the first byte), or when
 *     the client sends nothing before the deadline: a server-speaks-first protocol (MySQL,
 *     SMTP) waits for the server, and so would we, forever.
 *
 * Bounded wait: one timer per detection (never one per byte) ends it after `waitMs`; a
 * client that has sent nothing by then is 'opaque' with reason 'timeout'. Whatever it did
 * send by then decides with the rules for an unfinished prefix (see `decideUnfinished`).
 *
 * Bounded size: at most DETECT_MAX_BYTES (one full TLS record, 16 KiB + 5) are examined; a
 * ClientHello not complete within them is TLS without an SNI. A request line is followed for
 * at most HTTP1_LINE_BOUND (8 KiB): a prefix that is still a valid "METHOD SP target" that
 * far is HTTP/1 (no other protocol looks like that; the HTTP layer's own limits then answer a
 * 414/431 properly, instead of an opaque pass-through that skips per-request policy). The
 * bytes held are what Node's stream had read anyway (one read is at most its highWaterMark):
 * once DETECT_MAX_BYTES are in, detection ends, reads stop, and Node stops reading the kernel
 * when its own buffer is full — nothing here grows with what the client sends.
 *
 * Every byte read is given back (`socket.unshift`) before the promise settles, in order, so
 * the next layer (node:http's server, node:http2's, a TLS server, a byte splice) reads the
 * stream from its first byte. A client that half-closes right after an undecided prefix
 * still has its bytes given back: the end of its stream is seen in the same 'readable' event
 * that delivers the last bytes, and the bytes are unshifted before Node emits 'end' (Node
 * checks for exactly this "one last unshift" before emitting it). Only a socket that was
 * destroyed (reset, or closed by the caller's own deadline) gets nothing back.
 *
 * After it settles, no listener or timer of detection remains on the socket: the caller needs
 * its own 'error' listener from then on. Call it before anything else reads the socket (a
 * 'data' listener would see the bytes twice). It never rejects, except for a bad `waitMs`.
 */

export type DetectedProtocol = 'http1' | 'h2' | 'tls' | 'opaque';

export interface Detected {
  protocol: DetectedProtocol;
  /** TLS only: the ClientHello's server_name (lowercase), or null (none sent, or not read whole). */
  sni?: string | null;
  /** TLS only: the ClientHello's ALPN protocol names, in the client's order ([] when none or not read). */
  alpn?: string[];
  /** What ended detection: the bytes themselves, the deadline, or the client closing (or the socket dying). */
  reason: 'bytes' | 'timeout' | 'closed';
}

/** The most bytes examined: one full TLS record (5 + 2^14), enough for any real ClientHello. */
export const DETECT_MAX_BYTES = CLIENT_HELLO_WINDOW;
/** How far a still-valid HTTP/1 request line is followed before it counts as HTTP/1. */
export const HTTP1_LINE_BOUND = 8 * 1024;
/**
 * The longest method token believed: the longest registered method (IANA HTTP Method
 * Registry) is UPDATEREDIRECTREF, 17 characters. A longer "token" is some other protocol's
 * text, and saying no early keeps the common case fast.
 */
export const HTTP1_MAX_METHOD = 32;

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const HTTP1_VERSION = Buffer.from('HTTP/1.', 'latin1');
const TLS_HANDSHAKE = 0x16;
const TLS_RECORD_HEADER_PREFIX = 3; // type + legacy_record_version: enough to call it TLS at a deadline
const SP = 0x20;

/** RFC 9110 §5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TCHAR[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TCHAR[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TCHAR[c] = 1;

type Verdict = Pick<Detected, 'protocol' | 'sni' | 'alpn'>;
type Match = 'yes' | 'no' | 'maybe';

const OPAQUE: Verdict = { protocol: 'opaque' };

/**
 * Decides from a prefix of the stream, or says `undefined`: not yet, more bytes could decide.
 * At DETECT_MAX_BYTES it always decides.
 */
export function classifyFirstBytes(bytes: Buffer): Verdict | undefined {
  if (bytes.length === 0) return undefined;
  const head = bytes.length > DETECT_MAX_BYTES ? bytes.subarray(0, DETECT_MAX_BYTES) : bytes;
  if (head[0] === TLS_HANDSHAKE) {
    // 0x16 is a control byte: neither a method token nor the preface can start with it.
    const hello = parseClientHello(head);
    if ('tls' in hello) return OPAQUE;
    if (hello.complete) return { protocol: 'tls', sni: hello.sni, alpn: hello.alpn };
    // A ClientHello that does not fit the window: still TLS, passed on untouched, no SNI.
    return head.length >= DETECT_MAX_BYTES ? { protocol: 'tls', sni: null, alpn: [] } : undefined;
  }
  const h2 = matchPreface(head);
  if (h2 === 'yes') return { protocol: 'h2' };
  const h1 = matchRequestLine(head);
  if (h1 === 'yes') return { protocol: 'http1' };
  if (h2 === 'no' && h1 === 'no') return OPAQUE;
  return undefined;
}

/**
 * The decision for a prefix that never finished deciding (the deadline passed, or the client
 * closed): a valid TLS record header (3 bytes) is TLS without SNI — it is certainly not
 * plaintext, and it must be passed on untouched; anything else is opaque, as Istio's Envoy
 * (continue_on_listener_filters_timeout) and Linkerd fall back to plain TCP when their
 * detection times out (a client that could not finish a request line in time is not HTTP).
 */
function decideUnfinished(bytes: Buffer): Verdict {
  const tlsStart = bytes.length >= TLS_RECORD_HEADER_PREFIX && bytes[0] === TLS_HANDSHAKE && !('tls' in parseClientHello(bytes));
  if (tlsStart) return { protocol: 'tls', sni: null, alpn: [] };
  return OPAQUE;
}

function matchPreface(bytes: Buffer): Match {
  const n = Math.min(bytes.length, H2_PREFACE.length);
  for (let i = 0; i < n; i++) if (bytes[i] !== H2_PREFACE[i]) return 'no';
  return n === H2_PREFACE.length ? 'yes' : 'maybe';
}

/** "METHOD SP request-target SP HTTP/1.d", followed byte by byte, as far as the bytes go. */
function matchRequestLine(bytes: Buffer): Match {
  const end = Math.min(bytes.length, HTTP1_LINE_BOUND);
  let i = 0;
  // method = token
  while (i < end && TCHAR[bytes[i]!] === 1) {
    if (++i > HTTP1_MAX_METHOD) return 'no';
  }
  if (i === end) return end >= HTTP1_LINE_BOUND ? 'no' : 'maybe';
  if (i === 0 || bytes[i] !== SP) return 'no';
  i++;
  // request-target: visible bytes (VCHAR, and obs-text that some clients still send), no CTL, no SP
  const targetStart = i;
  while (i < end && isTargetByte(bytes[i]!)) i++;
  if (i === end) return end >= HTTP1_LINE_BOUND ? 'yes' : 'maybe';
  if (i === targetStart || bytes[i] !== SP) return 'no';
  i++;
  // HTTP-version = "HTTP/1." DIGIT (case-sensitive, RFC 9112 §2.3)
  for (let k = 0; k < HTTP1_VERSION.length; k++, i++) {
    if (i >= bytes.length) return 'maybe';
    if (bytes[i] !== HTTP1_VERSION[k]) return 'no';
  }
  if (i >= bytes.length) return 'maybe';
  return bytes[i]! >= 0x30 && bytes[i]! <= 0x39 ? 'yes' : 'no';
}

function isTargetByte(c: number): boolean {
  return (c > 0x20 && c < 0x7f) || c >= 0x80;
}

/** Node's "EOF received" flag, not yet public API (readableEnded turns true only after 'end'). */
function eofReceived(socket: Socket): boolean {
  return (socket as unknown as { _readableState?: { ended?: boolean } })._readableState?.ended === true;
}

export function detectProtocol(socket: Socket, waitMs: number): Promise<Detected> {
  if (!Number.isFinite(waitMs) || waitMs <= 0) {
    return Promise.reject(new RangeError(`detectProtocol: waitMs must be a positive number of milliseconds, got ${waitMs}`));
  }
  if (socket.destroyed || socket.readableEnded) return Promise.resolve({ protocol: 'opaque', reason: 'closed' });

  return new Promise((resolve) => {
    /** Every chunk read, exactly as read: what is given back. */
    const chunks: Buffer[] = [];
    let length = 0;
    /** The first DETECT_MAX_BYTES as one buffer, grown by doubling (never copied per byte). */
    let view: Buffer | null = null;
    let viewLength = 0;
    let settled = false;

    const examined = (): Buffer => {
      if (chunks.length === 1) return chunks[0]!;
      return view === null ? Buffer.alloc(0) : view.subarray(0, viewLength);
    };
    const keep = (chunk: Buffer): void => {
      chunks.push(chunk);
      length += chunk.length;
      if (chunks.length === 1) return; // examined in place
      if (view === null) {
        // A second chunk: start the view with the first one.
        view = Buffer.allocUnsafe(Math.min(DETECT_MAX_BYTES, Math.max(2 * chunks[0]!.length, 1024)));
        viewLength = chunks[0]!.copy(view, 0, 0, Math.min(chunks[0]!.length, view.length));
      }
      const take = Math.min(chunk.length, DETECT_MAX_BYTES - viewLength);
      if (take <= 0) return;
      if (viewLength + take > view.length) {
        const grown = Buffer.allocUnsafe(Math.min(DETECT_MAX_BYTES, Math.max(viewLength + take, 2 * view.length)));
        view.copy(grown, 0, 0, viewLength);
        view = grown;
      }
      viewLength += chunk.copy(view, viewLength, 0, take);
    };

    const finish = (verdict: Verdict, reason: Detected['reason'], giveBack: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off('readable', onReadable);
      socket.off('end', onEnd);
      socket.off('error', onGone);
      socket.off('close', onGone);
      if (giveBack && length > 0 && !socket.destroyed) socket.unshift(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, length));
      resolve({ ...verdict, reason });
    };

    const onReadable = (): void => {
      let chunk: Buffer | null;
      while (length < DETECT_MAX_BYTES && (chunk = socket.read() as Buffer | null) !== null) keep(chunk);
      const verdict = classifyFirstBytes(examined());
      if (verdict !== undefined) {
        finish(verdict, 'bytes', true);
        return;
      }
      // The client half-closed after an undecided prefix: decide now, while the bytes can
      // still be given back ('end' is emitted on the next tick, unless they are).
      if (eofReceived(socket)) finish(decideUnfinished(examined()), 'closed', true);
    };
    // Only reached when 'readable' did not settle first (nothing was read): nothing to give back.
    const onEnd = (): void => finish(length > 0 ? decideUnfinished(examined()) : OPAQUE, 'closed', false);
    const onGone = (): void => finish(length > 0 ? decideUnfinished(examined()) : OPAQUE, 'closed', false);
    const timer = setTimeout(() => finish(length > 0 ? decideUnfinished(examined()) : OPAQUE, 'timeout', true), waitMs);

    socket.on('readable', onReadable);
    socket.on('end', onEnd);
    socket.on('error', onGone);
    socket.on('close', onGone);
  });
}
