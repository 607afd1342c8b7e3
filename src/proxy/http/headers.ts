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
}

/**
 * Filters a raw header list for forwarding: drops hop-by-hop fields, every field that a
 * `Connection` header names (read FIRST, so a client cannot name a header the proxy adds and
 * have it dropped after the proxy added it), and every copy of `dropName` (the identity header:
 * a caller-sent copy must never reach the app). Returns the kept fields in their original
 * order and case.
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
  let host = '';
  let contentType = '';
  let contentLength = '';
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    const value = raw[i + 1]!;
    if (HOP_BY_HOP.has(lower)) {
      if (lower === 'transfer-encoding') chunked = true;
      continue;
    }
    if (lower === dropName) continue;
    if (named !== null && named.has(lower)) continue;
    if (lower === 'host') host = value;
    else if (lower === 'content-type') contentType = value;
    else if (lower === 'content-length') contentLength = value;
    headers.push(name, value);
  }
  return { headers, chunked, host, contentType, contentLength };
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
