import { malformedRequest, type ProxyError } from './errors.ts';

/**
 * Header rewriting on the hot path, done on node:http's flat `rawHeaders` arrays
 * ([name, value, name, value, ...]) so nothing builds a headers object per request.
 */

/** The header that tells the app who called: the caller's verified SPIFFE ID, set by the inbound sidecar only. */
export const PEER_IDENTITY_HEADER = 'x-meshlet-peer-identity';

// RFC 9110 §7.6.1 connection-specific fields, plus the de-facto ones proxies strip
// (keep-alive, proxy-connection). Transfer-Encoding is hop-by-hop: each leg re-frames
// the body (chunked when there is no Content-Length), see ForwardedHead.chunked.
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization',
  'te', 'trailer', 'transfer-encoding', 'upgrade',
  // node:http answers `Expect: 100-continue` itself before the body is read; passing it on
  // would make the next hop send a second, stray 100.
  'expect',
]);

// CGI-style servers (WSGI's wsgiref, Rack, older gunicorn and Puma: the CVE-2024-45614 class)
// upper-case a field name and turn `-` into `_`, so `X_Meshlet_Peer_Identity` and
// `x-meshlet-peer-identity` become the same HTTP_X_MESHLET_PEER_IDENTITY. A field spelled with
// `_` that aliases the identity header, a framing field the next leg sets (Content-Length) or a
// field the proxy strips is dropped like the field it aliases: the app can only ever read the
// values the proxy itself put there.
const UNDERSCORE_ALIASED = new Set([...HOP_BY_HOP, 'content-length', PEER_IDENTITY_HEADER]);
// Only a name as long as one of them can alias it: a length test first keeps the common field
// (host, accept, content-type, …) to one array read, with no scan and no allocation.
const ALIASED_LENGTH = new Uint8Array(32);
for (const name of UNDERSCORE_ALIASED) if (name.includes('-')) ALIASED_LENGTH[name.length] = 1;

/** True when `lower` (a lower-cased field name) contains `_` and reads as a field above once `_` is `-`. */
export function aliasesProxyField(lower: string): boolean {
  if (lower.length >= 32 || ALIASED_LENGTH[lower.length] === 0 || lower.indexOf('_') === -1) return false;
  return UNDERSCORE_ALIASED.has(lower.replaceAll('_', '-'));
}

/** A caller-supplied value quoted for an error message: bounded, control characters escaped. */
export function quoted(value: string): string {
  return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value);
}

/** What the scan of a request head found, besides the forwarded headers. */
export interface ForwardedHead {
  /** The headers to send to the next hop (flat, as node:http's `headers` array form accepts). */
  headers: string[];
  /** The message body was chunked: the next leg must be chunked too (the pool frames it). */
  chunked: boolean;
  /** The Host header value, or '' (outbound routing). */
  host: string;
  /** The Content-Type value, or '' (gRPC detection for policy facts). */
  contentType: string;
  /** Content-Length was present (a body of known size follows, possibly 0). */
  contentLength: string;
  /**
   * Why the head must be refused (a 400 that closes the connection), or null. node's parser
   * accepts these but the proxy and the app could read them differently (request smuggling,
   * RFC 9112 §6.1, §3.2); see refusedHead().
   */
  malformed: string | null;
}

/**
 * Filters a raw header list for forwarding: drops hop-by-hop fields, every field that a
 * `Connection` header names (read FIRST, so a client cannot name a header the proxy adds and
 * have it dropped after the proxy added it), every copy of `dropName` (the identity header:
 * a caller-sent copy must never reach the app) and every `_` spelling of it or of a field the
 * proxy frames or strips. Returns the kept fields in their original order and case.
 *
 * It also notes what node's parser lets through but a proxy must not forward (`malformed`):
 * - a Transfer-Encoding other than exactly `chunked`: llhttp reports `gzip` or `xchunked` only
 *   AFTER the head was handed over, and accepts `gzip, chunked`, whose body this proxy would
 *   de-chunk and pass on without saying it is gzip (RFC 9112 §6.1);
 * - a second Host field: node's `req.headers.host` is the first one, routing here would use one
 *   of them and the app another (RFC 9112 §3.2: a request with more than one Host is a 400).
 */
export function forwardHeaders(raw: readonly string[], dropName: string | null): ForwardedHead {
  let named: Set<string> | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 10 && name.toLowerCase() === 'connection') {
      for (const token of raw[i + 1]!.split(',')) {
        const t = token.trim().toLowerCase();
        if (t !== '' && t !== 'close' && t !== 'keep-alive') (named ??= new Set()).add(t);
      }
    }
  }
  const headers: string[] = [];
  let chunked = false;
  let hostSeen = false;
  let host = '';
  let contentType = '';
  let contentLength = '';
  let malformed: string | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    const value = raw[i + 1]!;
    if (HOP_BY_HOP.has(lower)) {
      if (lower === 'transfer-encoding') {
        if (chunked) malformed ??= 'more than one Transfer-Encoding field';
        else if (value.length !== 7 || value.toLowerCase() !== 'chunked') malformed ??= `Transfer-Encoding ${quoted(value)}: only "chunked" is accepted (RFC 9112 §6.1)`;
        chunked = true;
      }
      continue;
    }
    if (lower === dropName) continue;
    if (named !== null && named.has(lower)) continue;
    if (aliasesProxyField(lower)) continue;
    if (lower === 'host') {
      if (hostSeen) malformed ??= 'more than one Host field (RFC 9112 §3.2)';
      hostSeen = true;
      host = value;
    } else if (lower === 'content-type') contentType = value;
    else if (lower === 'content-length') contentLength = value;
    headers.push(name, value);
  }
  return { headers, chunked, host, contentType, contentLength, malformed };
}

/**
 * The refusal for a head forwardHeaders() found malformed, or for a Transfer-Encoding in an
 * HTTP/1.0 request (RFC 9112 §6.1: faulty framing, the connection must be closed); null when
 * the head may go on. Every such refusal closes the connection: after a framing doubt nothing
 * later on it can be trusted.
 */
export function refusedHead(head: ForwardedHead, httpVersionMinor: number): ProxyError | null {
  let why = head.malformed;
  if (why === null && head.chunked && httpVersionMinor === 0) why = 'Transfer-Encoding in an HTTP/1.0 request (RFC 9112 §6.1)';
  return why === null ? null : malformedRequest(why, true);
}

/**
 * Filters a response head (the pool hands it over as raw latin1 buffers) for forwarding to the
 * client: hop-by-hop fields and the fields `Connection` names are dropped; node:http on the
 * client leg adds its own framing and keep-alive fields.
 */
export function forwardResponseHeaders(raw: readonly Buffer[]): string[] {
  const headers: string[] = [];
  let named: Set<string> | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1');
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower)) {
      if (lower === 'connection') {
        for (const token of raw[i + 1]!.toString('latin1').split(',')) {
          const t = token.trim().toLowerCase();
          if (t !== '' && t !== 'close' && t !== 'keep-alive') (named ??= new Set()).add(t);
        }
      }
      continue;
    }
    headers.push(name, raw[i + 1]!.toString('latin1'));
  }
  if (named === null) return headers;
  const kept: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    if (!named.has(headers[i]!.toLowerCase())) kept.push(headers[i]!, headers[i + 1]!);
  }
  return kept;
}
