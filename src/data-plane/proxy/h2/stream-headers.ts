import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import { aliasesProxyField, PEER_IDENTITY_HEADER, quoted } from '../http/headers.ts';

/**
 * Header rewriting for HTTP/2 streams, on the flat `rawHeaders` list node:http2 hands to a
 * 'stream' listener ([name, value, …], names already lowercase).
 *
 * RFC 9113 §8.2.2: connection-specific fields (Connection, Keep-Alive, Proxy-Connection,
 * Transfer-Encoding, Upgrade) make an HTTP/2 message malformed, and TE may only be
 * "trailers". nghttp2 already refuses such requests on arrival (RST_STREAM PROTOCOL_ERROR);
 * they are dropped here too so nothing this code builds can carry one to the next hop.
 * `te: trailers` IS kept toward an HTTP/2 next hop: gRPC servers require it.
 */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'http2-settings']);

// RFC 9110 §9.1 / §5.6.2: a method is a token, and it is case-sensitive. 1 = a character an
// upper-case token may hold: tchar without a-z.
const METHOD_CHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") METHOD_CHAR[c.charCodeAt(0)] = 1;

/**
 * True for a method that is an upper-case token. HTTP/1.1 gets the same rule from llhttp, which
 * refuses any method it does not know (so every lower- or mixed-case one); nghttp2 only checks
 * that :method is a token. A lower-case `delete` is not DELETE (methods are case-sensitive), so
 * the policy would not match it to a DELETE route, yet Flask and Django upper-case it and run
 * the DELETE handler: what is authorized would not be what the app acts on. Refused, never
 * normalized: the caller sent a method no route names.
 */
export function isUpperCaseToken(method: string): boolean {
  if (method.length === 0) return false;
  for (let i = 0; i < method.length; i++) {
    const c = method.charCodeAt(i);
    if (c >= 128 || METHOD_CHAR[c] === 0) return false;
  }
  return true;
}

/** What a request stream's head says, split into pseudo-headers and forwardable fields. */
export interface StreamRequestHead {
  readonly method: string;
  /** :path as sent (path and query); '' for CONNECT. */
  readonly path: string;
  /** :authority, else the Host field, else ''. */
  readonly authority: string;
  readonly contentType: string | undefined;
  /** Number of fields (pseudo-headers included), for limits.maxHeaderCount. */
  readonly fieldCount: number;
  /** Regular fields to forward (identity header and connection-specific fields removed), flat. */
  readonly fields: string[];
  /** The request sent `te: trailers` (kept toward HTTP/2 next hops). */
  readonly teTrailers: boolean;
  /** Why the stream must be refused with 400 MESHLET_BAD_REQUEST, or null. */
  readonly malformed: string | null;
}

/**
 * Reads a stream's head. Dropped: connection-specific fields, every copy of `dropName` (the
 * identity header) and every `_` spelling of it (aliasesProxyField: CVE-2024-45614 class).
 * Malformed (refused before policy, never forwarded):
 * - a :method that is not an upper-case token (isUpperCaseToken);
 * - a Host that names another authority than :authority (RFC 9113 §8.3.1: a server SHOULD
 *   treat that as malformed; the proxy routes by one of them, an app behind could read the
 *   other), or more than one Host field (nghttp2 already resets such a stream; checked here
 *   too, so the rule does not rest on it).
 */
export function readStreamRequest(raw: readonly string[], dropName: string): StreamRequestHead {
  let method = '';
  let path = '';
  let authority = '';
  let host: string | null = null;
  let contentType: string | undefined;
  let teTrailers = false;
  let malformed: string | null = null;
  const fields: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    if (name.charCodeAt(0) === 58 /* ':' */) {
      if (name === ':method') method = value;
      else if (name === ':path') path = value;
      else if (name === ':authority') authority = value;
      continue;
    }
    if (CONNECTION_SPECIFIC.has(name)) {
      if (name === 'te' && value.trim().toLowerCase() === 'trailers') teTrailers = true;
      continue;
    }
    if (name === dropName || aliasesProxyField(name)) continue;
    if (name === 'host') {
      if (host !== null) malformed ??= 'more than one Host field';
      host = value;
      continue;
    }
    if (name === 'content-type') contentType = value;
    fields.push(name, value);
  }
  if (!isUpperCaseToken(method)) {
    malformed = `:method ${quoted(method)} is not an upper-case token; methods are case-sensitive (RFC 9110 §9.1)`;
  } else if (host !== null && authority !== '' && (host.length !== authority.length || host.toLowerCase() !== authority.toLowerCase())) {
    malformed ??= `Host ${quoted(host)} disagrees with :authority ${quoted(authority)} (RFC 9113 §8.3.1)`;
  }
  return { method, path, authority: authority || (host ?? ''), contentType, fieldCount: raw.length / 2, fields, teTrailers, malformed };
}

/**
 * A request's trailer section for an HTTP/2 next hop: connection-specific fields, pseudo-headers
 * (RFC 9113 §8.1) and every name that reads as the identity header (any `_` spelling) dropped.
 * Trailers arrive after the head was checked, and some servers merge them into the request's
 * metadata (gRPC servers do), so a caller's identity header there would reach the app.
 */
export function h2RequestTrailers(incoming: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const name of Object.keys(incoming)) {
    if (name.charCodeAt(0) === 58 /* ':' */ || CONNECTION_SPECIFIC.has(name) || name === PEER_IDENTITY_HEADER || aliasesProxyField(name)) continue;
    out[name] = incoming[name];
  }
  return out;
}

/** The head for an HTTP/2 next hop: pseudo-headers, the kept fields (repeats as arrays), optional identity. */
export function h2ForwardHeaders(head: StreamRequestHead, path: string, identity: { name: string; value: string } | null): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = { ':method': head.method, ':path': path, ':scheme': 'http', ':authority': head.authority };
  const f = head.fields;
  for (let i = 0; i < f.length; i += 2) addField(out, f[i]!, f[i + 1]!);
  if (head.teTrailers) out.te = 'trailers';
  if (identity !== null) out[identity.name] = identity.value;
  return out;
}

/**
 * The head for an HTTP/1.1 next hop (flat, as the pool's dispatch() takes it): Host from :authority;
 * RFC 9113 §8.2.3: cookie fields split by an HTTP/2 client are joined with "; " again.
 */
export function http1ForwardHeaders(head: StreamRequestHead, identity: { name: string; value: string } | null): string[] {
  const out: string[] = ['host', head.authority];
  let cookie: string | null = null;
  const f = head.fields;
  for (let i = 0; i < f.length; i += 2) {
    if (f[i] === 'cookie') cookie = cookie === null ? f[i + 1]! : `${cookie}; ${f[i + 1]!}`;
    else out.push(f[i]!, f[i + 1]!);
  }
  if (cookie !== null) out.push('cookie', cookie);
  if (identity !== null) out.push(identity.name, identity.value);
  return out;
}

/**
 * A response head from an HTTP/2 next hop, for the client stream: `:status` and the regular
 * fields, connection-specific ones dropped. Also used for response trailer sections, which
 * carry no pseudo-headers (RFC 9113 §8.1); request trailers go through h2RequestTrailers.
 */
export function h2ResponseHeaders(incoming: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const name of Object.keys(incoming)) {
    if (name.charCodeAt(0) === 58 /* ':' */ ? name !== ':status' : CONNECTION_SPECIFIC.has(name)) continue;
    out[name] = incoming[name];
  }
  return out;
}

/** A flat HTTP/1.1 response field list (already filtered by forwardResponseHeaders) as an HTTP/2 head. */
export function h2HeadersFromFlat(status: number, flat: readonly string[]): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = { ':status': status };
  for (let i = 0; i < flat.length; i += 2) addField(out, flat[i]!.toLowerCase(), flat[i + 1]!);
  return out;
}

// A repeated field: set-cookie and cookie stay separate (arrays); for any other field the
// values are joined with ", " (RFC 9110 §5.3), since node:http2 refuses arrays for fields
// defined as single-valued.
function addField(out: OutgoingHttpHeaders, name: string, value: string): void {
  const prev = out[name];
  if (prev === undefined) out[name] = value;
  else if (name === 'set-cookie' || name === 'cookie') out[name] = Array.isArray(prev) ? [...prev, value] : [String(prev), value];
  else out[name] = `${String(prev)}, ${value}`;
}
