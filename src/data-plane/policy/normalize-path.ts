/**
 * Request-path normalization before authorization (RFC 3986 §6.2.2 syntax-based
 * normalization, plus refusals for the encodings that different servers read differently).
 *
 * The sidecar matches the policy against the normalized path AND forwards that same path to
 * the app, so what was authorized is exactly what the app receives. Anything ambiguous is
 * refused (the sidecar answers 400) rather than guessed. Rules, in order (docs/policy.md):
 * - the request-target must be origin-form (`/…`); query (`?…`) is kept for forwarding but not
 *   matched; a fragment (`#…`) is dropped;
 * - `%XX` must be two hex digits; unreserved characters (A-Z a-z 0-9 - . _ ~) are decoded,
 *   every other escape is kept with uppercase hex (`%3f` -> `%3F`), decoded exactly once
 *   (so `%252F` stays `%252F`: it never becomes a slash here);
 * - refused: `%2F` (encoded slash), `%5C` and `\` (backslash), `%00` and control characters,
 *   `;` (path parameters, which Tomcat-style servers strip), characters that must be encoded,
 *   escapes of bytes >= 0x80 that are not valid shortest-form UTF-8 (overlong forms such as
 *   `%C0%AE`, surrogates, truncated sequences), a segment ending in `.` after decoding
 *   (`/admin.`, which some servers treat as `/admin`);
 * - duplicate slashes are merged, then dot segments (including encoded ones such as `%2e%2E`)
 *   are resolved per RFC 3986 §5.2.4 (`..` above the root stays at the root);
 * - letter case of the path is significant and kept.
 * Fast path: a path made only of plain characters, with no `%`, no `//` and no segment that
 * starts or ends with `.`, is returned as is, after one scan and no copy.
 */

export type PathRefusalCode =
  | 'PATH_EMPTY'
  | 'PATH_TOO_LONG'
  | 'PATH_NOT_ORIGIN_FORM'
  | 'PATH_INVALID_ESCAPE'
  | 'PATH_ENCODED_SLASH'
  | 'PATH_ENCODED_BACKSLASH'
  | 'PATH_BACKSLASH'
  | 'PATH_NUL'
  | 'PATH_CONTROL_CHARACTER'
  | 'PATH_SEMICOLON'
  | 'PATH_INVALID_CHARACTER'
  | 'PATH_INVALID_UTF8'
  | 'PATH_TRAILING_DOT';

export type NormalizedPath =
  | { readonly ok: true; readonly path: string; readonly query: string }
  | { readonly ok: false; readonly code: PathRefusalCode; readonly reason: string };

export const MAX_PATH_LENGTH = 8192;

const REASONS: Record<PathRefusalCode, string> = {
  PATH_EMPTY: 'the request path is empty',
  PATH_TOO_LONG: `the request path is longer than ${MAX_PATH_LENGTH} characters`,
  PATH_NOT_ORIGIN_FORM: 'the request target must be a path starting with "/"',
  PATH_INVALID_ESCAPE: 'the request path has a "%" not followed by two hex digits',
  PATH_ENCODED_SLASH: 'the request path has an encoded slash (%2F), which servers decode differently',
  PATH_ENCODED_BACKSLASH: 'the request path has an encoded backslash (%5C), which servers decode differently',
  PATH_BACKSLASH: 'the request path has a backslash, which some servers treat as a slash',
  PATH_NUL: 'the request path has a NUL byte (%00)',
  PATH_CONTROL_CHARACTER: 'the request path has a control character',
  PATH_SEMICOLON: 'the request path has a ";" (path parameters are stripped by some servers)',
  PATH_INVALID_CHARACTER: 'the request path has a character that must be percent-encoded',
  PATH_INVALID_UTF8: 'the request path has percent-encoded bytes that are not valid shortest-form UTF-8',
  PATH_TRAILING_DOT: 'a segment of the request path ends with "." (some servers strip trailing dots)',
};

// Preallocated, frozen refusals: refusing a hostile path allocates nothing.
const REFUSALS = Object.fromEntries(
  (Object.keys(REASONS) as PathRefusalCode[]).map((code) => [code, Object.freeze({ ok: false as const, code, reason: REASONS[code] })]),
) as Record<PathRefusalCode, NormalizedPath & { ok: false }>;

export function pathRefusal(code: PathRefusalCode): NormalizedPath & { ok: false } {
  return REFUSALS[code];
}

// Character classes of a literal (undecoded) path character, ASCII only.
const C_INVALID = 0;
const C_PLAIN = 1;
const C_PERCENT = 2;
const C_SLASH = 3;
const C_DOT = 4;
const C_SEMICOLON = 5;
const C_BACKSLASH = 6;
const C_CONTROL = 7;
const CLASS = new Uint8Array(128);
{
  // pchar = unreserved / pct-encoded / sub-delims / ":" / "@"  (RFC 3986 §3.3)
  const plain = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_~!$&'()*+,=:@";
  for (const ch of plain) CLASS[ch.charCodeAt(0)] = C_PLAIN;
  CLASS[0x25] = C_PERCENT;
  CLASS[0x2f] = C_SLASH;
  CLASS[0x2e] = C_DOT;
  CLASS[0x3b] = C_SEMICOLON;
  CLASS[0x5c] = C_BACKSLASH;
  for (let c = 0; c < 0x20; c++) CLASS[c] = C_CONTROL;
  CLASS[0x7f] = C_CONTROL;
}

const Q = 0x3f; // ?
const HASH = 0x23; // #
const SLASH = 0x2f;
const DOT = 0x2e;

function refusalForClass(cls: number, c: number): NormalizedPath & { ok: false } {
  if (cls === C_SEMICOLON) return REFUSALS.PATH_SEMICOLON;
  if (cls === C_BACKSLASH) return REFUSALS.PATH_BACKSLASH;
  if (cls === C_CONTROL) return c === 0 ? REFUSALS.PATH_NUL : REFUSALS.PATH_CONTROL_CHARACTER;
  return REFUSALS.PATH_INVALID_CHARACTER;
}

/** Normalizes a raw HTTP request-target for matching and forwarding (rules above). */
export function normalizePath(raw: string): NormalizedPath {
  const len = raw.length;
  if (len === 0) return REFUSALS.PATH_EMPTY;
  if (len > MAX_PATH_LENGTH) return REFUSALS.PATH_TOO_LONG;
  if (raw.charCodeAt(0) !== SLASH) return REFUSALS.PATH_NOT_ORIGIN_FORM;

  let end = len;
  let simple = true;
  let prev = SLASH;
  for (let i = 1; i < len; i++) {
    const c = raw.charCodeAt(i);
    if (c === Q || c === HASH) {
      end = i;
      break;
    }
    const cls = c < 128 ? CLASS[c]! : C_INVALID;
    if (cls === C_PLAIN) {
      prev = c;
      continue;
    }
    if (cls === C_SLASH) {
      if (prev === SLASH || prev === DOT) simple = false; // "//" or a segment ending in "."
    } else if (cls === C_DOT) {
      if (prev === SLASH) simple = false; // a segment starting with "." may be a dot segment
    } else if (cls === C_PERCENT) {
      simple = false;
    } else {
      return refusalForClass(cls, c);
    }
    prev = c;
  }
  if (prev === DOT) simple = false;

  const query = end === len || raw.charCodeAt(end) === HASH ? '' : sliceQuery(raw, end);
  if (simple) return { ok: true, path: end === len ? raw : raw.slice(0, end), query };
  return normalizeSlow(raw, end, query);
}

function sliceQuery(raw: string, start: number): string {
  const hash = raw.indexOf('#', start);
  return hash === -1 ? raw.slice(start) : raw.slice(start, hash);
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

const HEX = '0123456789ABCDEF';
function isUnreservedByte(b: number): boolean {
  return (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39) || b === 0x2d || b === 0x2e || b === 0x5f || b === 0x7e;
}

/** Reads the escape at raw[i] ('%'); returns the byte or -1 when it is not %XX. */
function escapedByte(raw: string, i: number, end: number): number {
  if (i + 2 >= end) return -1;
  const hi = hexValue(raw.charCodeAt(i + 1));
  const lo = hexValue(raw.charCodeAt(i + 2));
  if (hi < 0 || lo < 0) return -1;
  return (hi << 4) | lo;
}

/**
 * Length of the UTF-8 sequence a lead byte starts (2..4), or 0 for a byte that cannot lead
 * one. C0/C1 (overlong 2-byte forms) and F5..FF are never valid (RFC 3629).
 */
function utf8SequenceLength(b: number): number {
  if (b >= 0xc2 && b <= 0xdf) return 2;
  if (b >= 0xe0 && b <= 0xef) return 3;
  if (b >= 0xf0 && b <= 0xf4) return 4;
  return 0;
}

function normalizeSlow(raw: string, end: number, query: string): NormalizedPath {
  const segments: string[] = [];
  let segment = '';
  let trailingSlash = false;
  let i = 1;
  const closeSegment = (last: boolean): NormalizedPath | undefined => {
    if (segment === '.' || segment === '..') {
      if (segment === '..') segments.pop();
      trailingSlash = true; // "/a/." and "/a/.." name a directory: "/a/"
    } else if (segment === '') {
      // merged duplicate slash; an empty last segment means the path ended with "/"
      if (last) trailingSlash = true;
    } else {
      if (segment.charCodeAt(segment.length - 1) === DOT) return REFUSALS.PATH_TRAILING_DOT;
      segments.push(segment);
      trailingSlash = false;
    }
    segment = '';
    return undefined;
  };
  while (i < end) {
    const c = raw.charCodeAt(i);
    if (c === SLASH) {
      const refused = closeSegment(false);
      if (refused) return refused;
      i++;
      continue;
    }
    const cls = c < 128 ? CLASS[c]! : C_INVALID;
    if (cls === C_PLAIN || cls === C_DOT) {
      segment += raw[i];
      i++;
      continue;
    }
    if (cls !== C_PERCENT) return refusalForClass(cls, c);
    const b = escapedByte(raw, i, end);
    if (b < 0) return REFUSALS.PATH_INVALID_ESCAPE;
    if (b === 0x2f) return REFUSALS.PATH_ENCODED_SLASH;
    if (b === 0x5c) return REFUSALS.PATH_ENCODED_BACKSLASH;
    if (b === 0) return REFUSALS.PATH_NUL;
    if (b < 0x80) {
      segment += isUnreservedByte(b) ? String.fromCharCode(b) : '%' + HEX[b >> 4] + HEX[b & 15];
      i += 3;
      continue;
    }
    // A multi-byte UTF-8 sequence: validate it whole, keep it encoded (normalized hex case).
    const n = utf8SequenceLength(b);
    if (n === 0) return REFUSALS.PATH_INVALID_UTF8;
    let cp = b & (n === 2 ? 0x1f : n === 3 ? 0x0f : 0x07);
    let encoded = '%' + HEX[b >> 4] + HEX[b & 15];
    for (let k = 1; k < n; k++) {
      const at = i + 3 * k;
      if (at >= end || raw.charCodeAt(at) !== 0x25) return REFUSALS.PATH_INVALID_UTF8;
      const cb = escapedByte(raw, at, end);
      if (cb < 0) return REFUSALS.PATH_INVALID_ESCAPE;
      if ((cb & 0xc0) !== 0x80) return REFUSALS.PATH_INVALID_UTF8;
      cp = (cp << 6) | (cb & 0x3f);
      encoded += '%' + HEX[cb >> 4] + HEX[cb & 15];
    }
    // Overlong 3- and 4-byte forms, UTF-16 surrogates, and code points past U+10FFFF.
    if ((n === 3 && cp < 0x800) || (n === 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff)) {
      return REFUSALS.PATH_INVALID_UTF8;
    }
    segment += encoded;
    i += 3 * n;
  }
  const refused = closeSegment(true);
  if (refused) return refused;
  const path = '/' + segments.join('/') + (trailingSlash && segments.length > 0 ? '/' : '');
  return { ok: true, path, query };
}
