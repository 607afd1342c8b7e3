import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';

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
}

export function readStreamRequest(raw: readonly string[], dropName: string): StreamRequestHead {
  let method = '';
  let path = '';
  let authority = '';
  let host = '';
  let contentType: string | undefined;
  let teTrailers = false;
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
    if (name === dropName) continue;
    if (name === 'host') {
      host = value;
      continue;
    }
    if (name === 'content-type') contentType = value;
    fields.push(name, value);
  }
  return { method, path, authority: authority || host, contentType, fieldCount: raw.length / 2, fields, teTrailers };
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
 * fields, connection-specific ones dropped. Also used for trailer sections (either way),
 * which carry no pseudo-headers (RFC 9113 §8.1).
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
