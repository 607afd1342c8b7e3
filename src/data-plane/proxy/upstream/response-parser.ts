/**
 * A strict HTTP/1.1 RESPONSE parser for the upstream pool (RFC 9112). It only ever reads
 * what a next hop (the app, a peer sidecar, a plaintext destination) answers to ONE request
 * at a time, so it is small: status line, header fields, then the body framed by
 * Content-Length, chunked (extensions skipped, trailers kept) or the connection's close.
 *
 * Strict where leniency is how responses get smuggled or split: obs-fold, a bare LF or CR,
 * control bytes in a value, an invalid field name, whitespace before the colon, Content-Length
 * that is not one plain decimal (or differs between copies), Content-Length WITH
 * Transfer-Encoding, a bad chunk size, bytes after a complete response (a second response the
 * proxy never asked for) — each is an error, the connection is dropped, the client gets 502.
 * Sizes are bounded: the head (and the trailers) by `maxHeadBytes`, a chunk-size line by 1 KiB.
 */

export interface ResponseSink {
  /** A complete head. 1xx heads come first and are followed by the final head. */
  onResponseHead(status: number, rawHeaders: Buffer[], statusText: string): void;
  onResponseBody(chunk: Buffer): void;
  /** The final response is complete; `reusable`: the connection may carry the next request. */
  onResponseEnd(rawTrailers: Buffer[], reusable: boolean): void;
}

export class ResponseParseError extends Error {
  readonly code = 'MESHLET_UPSTREAM_BAD_RESPONSE';
}

const CR = 0x0d;
const LF = 0x0a;
const MAX_CHUNK_LINE = 1024;
const EMPTY: Buffer[] = [];

// RFC 9110 §5.6.2 tchar.
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TCHAR[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TCHAR[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TCHAR[c] = 1;
// field-value bytes: VCHAR, SP, HTAB, obs-text. Never CTLs (NUL, CR, LF, DEL…).
const VALUE = new Uint8Array(256);
VALUE[0x09] = 1;
for (let c = 0x20; c <= 0x7e; c++) VALUE[c] = 1;
for (let c = 0x80; c <= 0xff; c++) VALUE[c] = 1;
const HEX = new Int8Array(256).fill(-1);
for (let c = 0; c < 10; c++) HEX[0x30 + c] = c;
for (let c = 0; c < 6; c++) {
  HEX[0x41 + c] = 10 + c;
  HEX[0x61 + c] = 10 + c;
}

type State = 'idle' | 'head' | 'length' | 'chunk-size' | 'chunk-data' | 'chunk-crlf' | 'trailers' | 'until-close' | 'done';

export class Http1ResponseParser {
  readonly #sink: ResponseSink;
  readonly #maxHeadBytes: number;
  #state: State = 'idle';
  #headRequest = false;
  /** Bytes of an incomplete head, chunk-size line or trailer section. */
  #partial: Buffer | null = null;
  #remaining = 0;
  #reusable = true;

  constructor(sink: ResponseSink, maxHeadBytes: number) {
    this.#sink = sink;
    this.#maxHeadBytes = maxHeadBytes;
  }

  /** Expect the response to a request with this method (a HEAD response has no body). */
  expect(method: string): void {
    this.#state = 'head';
    this.#headRequest = method === 'HEAD';
    this.#partial = null;
    this.#reusable = true;
  }

  /** True while a response is expected or being read. */
  get busy(): boolean {
    return this.#state !== 'idle' && this.#state !== 'done';
  }

  /** True once something of the current response was read (a retry would not be safe anyway). */
  get started(): boolean {
    return this.#state !== 'head' || this.#partial !== null;
  }

  /** Feeds bytes from the socket; throws ResponseParseError. */
  execute(data: Buffer): void {
    let off = 0;
    const len = data.length;
    while (off < len) {
      switch (this.#state) {
        case 'idle':
        case 'done':
          throw new ResponseParseError('bytes after the end of the response (none was asked for)');
        case 'head':
          off = this.#readHead(data, off);
          break;
        case 'length': {
          const n = Math.min(this.#remaining, len - off);
          this.#sink.onResponseBody(off === 0 && n === len ? data : data.subarray(off, off + n));
          off += n;
          this.#remaining -= n;
          if (this.#remaining === 0) this.#end(EMPTY);
          break;
        }
        case 'until-close':
          this.#sink.onResponseBody(off === 0 ? data : data.subarray(off));
          off = len;
          break;
        case 'chunk-size':
          off = this.#readChunkSize(data, off);
          break;
        case 'chunk-data': {
          const n = Math.min(this.#remaining, len - off);
          this.#sink.onResponseBody(data.subarray(off, off + n));
          off += n;
          this.#remaining -= n;
          if (this.#remaining === 0) {
            this.#state = 'chunk-crlf';
            this.#remaining = 2;
          }
          break;
        }
        case 'chunk-crlf': {
          const want = this.#remaining === 2 ? CR : LF;
          if (data[off] !== want) throw new ResponseParseError('chunk data not followed by CRLF');
          off++;
          if (--this.#remaining === 0) this.#state = 'chunk-size';
          break;
        }
        case 'trailers':
          off = this.#readTrailers(data, off);
          break;
      }
    }
  }

  /** The connection closed (EOF). Completes a close-delimited body; throws when a response was cut short. */
  finish(): void {
    if (this.#state === 'until-close') {
      this.#reusable = false;
      this.#end(EMPTY);
      return;
    }
    if (this.busy) throw new ResponseParseError('the connection closed in the middle of the response');
  }

  #end(trailers: Buffer[]): void {
    this.#state = 'done';
    this.#partial = null;
    this.#sink.onResponseEnd(trailers, this.#reusable);
  }

  #readHead(data: Buffer, off: number): number {
    const prior = this.#partial?.length ?? 0;
    const bytes = this.#partial === null ? (off === 0 ? data : data.subarray(off)) : Buffer.concat([this.#partial, data.subarray(off)]);
    const end = bytes.indexOf('\r\n\r\n', Math.max(0, prior - 3));
    if (end === -1) {
      if (bytes.length > this.#maxHeadBytes) throw new ResponseParseError(`response head larger than ${this.#maxHeadBytes} bytes`);
      this.#partial = Buffer.from(bytes);
      return data.length;
    }
    if (end + 4 > this.#maxHeadBytes) throw new ResponseParseError(`response head larger than ${this.#maxHeadBytes} bytes`);
    this.#partial = null;
    const consumed = end + 4 - prior;
    this.#parseHead(bytes, end);
    return off + consumed;
  }

  #parseHead(buf: Buffer, end: number): void {
    // Status line: HTTP/1.x SP 3DIGIT SP reason
    const lineEnd = lineEndAt(buf, 0, end);
    if (lineEnd < 12 || buf[0] !== 0x48 || buf.toString('latin1', 0, 7) !== 'HTTP/1.' || buf[8] !== 0x20 || buf[12] !== 0x20 && lineEnd !== 12) {
      throw new ResponseParseError('malformed status line');
    }
    const minor = buf[7]! - 0x30;
    if (minor !== 0 && minor !== 1) throw new ResponseParseError('unsupported HTTP version');
    const d0 = buf[9]! - 0x30;
    const d1 = buf[10]! - 0x30;
    const d2 = buf[11]! - 0x30;
    if (d0 < 1 || d0 > 5 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9) throw new ResponseParseError('malformed status code');
    const status = d0 * 100 + d1 * 10 + d2;
    for (let i = 13; i < lineEnd; i++) if (VALUE[buf[i]!] === 0) throw new ResponseParseError('invalid byte in the reason phrase');
    const statusText = lineEnd > 13 ? buf.toString('latin1', 13, lineEnd) : '';

    const raw: Buffer[] = [];
    let contentLength = -1;
    let chunked = false;
    let transferEncoding = false;
    let connClose = minor === 0;
    let pos = lineEnd + 2;
    while (pos < end + 2) {
      const eol = lineEndAt(buf, pos, end);
      const first = buf[pos]!;
      if (first === 0x20 || first === 0x09) throw new ResponseParseError('obsolete line folding');
      let colon = pos;
      while (colon < eol && TCHAR[buf[colon]!] === 1) colon++;
      if (colon === pos || colon === eol || buf[colon] !== 0x3a) throw new ResponseParseError('invalid header field name');
      let vs = colon + 1;
      let ve = eol;
      while (vs < ve && (buf[vs] === 0x20 || buf[vs] === 0x09)) vs++;
      while (ve > vs && (buf[ve - 1] === 0x20 || buf[ve - 1] === 0x09)) ve--;
      for (let i = vs; i < ve; i++) if (VALUE[buf[i]!] === 0) throw new ResponseParseError('invalid byte in a header value');
      const nameLen = colon - pos;
      if (nameLen === 14 || nameLen === 17 || nameLen === 10) {
        const name = buf.toString('latin1', pos, colon).toLowerCase();
        if (name === 'content-length') {
          const n = parseContentLength(buf, vs, ve);
          if (contentLength !== -1 && contentLength !== n) throw new ResponseParseError('conflicting Content-Length fields');
          contentLength = n;
        } else if (name === 'transfer-encoding') {
          transferEncoding = true;
          const v = buf.toString('latin1', vs, ve).toLowerCase();
          const last = v.slice(v.lastIndexOf(',') + 1).trim();
          // RFC 9112 §6.3: chunked must be last; any other final coding delimits by close.
          chunked = last === 'chunked';
        } else if (name === 'connection') {
          const v = buf.toString('latin1', vs, ve).toLowerCase();
          if (/(^|[\s,])close([\s,]|$)/.test(v)) connClose = true;
          else if (minor === 0 && /(^|[\s,])keep-alive([\s,]|$)/.test(v)) connClose = false;
        }
      }
      raw.push(buf.subarray(pos, colon), buf.subarray(vs, ve));
      pos = eol + 2;
    }
    if (transferEncoding && contentLength !== -1) throw new ResponseParseError('Content-Length with Transfer-Encoding');
    if (status === 101) throw new ResponseParseError('101 Switching Protocols to a request that asked for no upgrade');

    this.#sink.onResponseHead(status, raw, statusText);
    if (status < 200) return; // 1xx: the final head follows (state stays 'head').
    this.#reusable = !connClose;
    if (this.#headRequest || status === 204 || status === 304) return this.#end(EMPTY);
    if (transferEncoding) {
      if (chunked) {
        this.#state = 'chunk-size';
        return;
      }
      this.#reusable = false;
      this.#state = 'until-close';
      return;
    }
    if (contentLength === -1) {
      this.#reusable = false;
      this.#state = 'until-close';
      return;
    }
    if (contentLength === 0) return this.#end(EMPTY);
    this.#remaining = contentLength;
    this.#state = 'length';
  }

  #readChunkSize(data: Buffer, off: number): number {
    const prior = this.#partial?.length ?? 0;
    const bytes = this.#partial === null ? data.subarray(off) : Buffer.concat([this.#partial, data.subarray(off)]);
    const lf = bytes.indexOf(LF);
    if (lf === -1) {
      if (bytes.length > MAX_CHUNK_LINE) throw new ResponseParseError('chunk-size line too long');
      this.#partial = Buffer.from(bytes);
      return data.length;
    }
    if (lf > MAX_CHUNK_LINE) throw new ResponseParseError('chunk-size line too long');
    if (lf === 0 || bytes[lf - 1] !== CR) throw new ResponseParseError('chunk-size line not ended by CRLF');
    this.#partial = null;
    let size = 0;
    let i = 0;
    for (; i < lf - 1; i++) {
      const h = HEX[bytes[i]!]!;
      if (h === -1) break;
      size = size * 16 + h;
      if (i >= 12) throw new ResponseParseError('chunk size too large');
    }
    if (i === 0) throw new ResponseParseError('invalid chunk size');
    // Chunk extensions (";name=value") carry nothing the proxy uses; their bytes must still be clean.
    while (i < lf - 1 && (bytes[i] === 0x20 || bytes[i] === 0x09)) i++;
    if (i < lf - 1) {
      if (bytes[i] !== 0x3b) throw new ResponseParseError('invalid chunk size');
      for (; i < lf - 1; i++) if (VALUE[bytes[i]!] === 0) throw new ResponseParseError('invalid byte in a chunk extension');
    }
    const consumed = lf + 1 - prior;
    if (size === 0) {
      this.#state = 'trailers';
    } else {
      this.#remaining = size;
      this.#state = 'chunk-data';
    }
    return off + consumed;
  }

  #readTrailers(data: Buffer, off: number): number {
    const prior = this.#partial?.length ?? 0;
    const bytes = this.#partial === null ? data.subarray(off) : Buffer.concat([this.#partial, data.subarray(off)]);
    // No trailers: the last chunk is followed directly by CRLF.
    if (bytes.length >= 2 && bytes[0] === CR && bytes[1] === LF) {
      this.#partial = null;
      this.#end(EMPTY);
      return off + 2 - prior;
    }
    const end = bytes.indexOf('\r\n\r\n');
    if (end === -1) {
      if (bytes.length > this.#maxHeadBytes) throw new ResponseParseError(`response trailers larger than ${this.#maxHeadBytes} bytes`);
      if (bytes.length >= 1 && bytes[0] !== CR && TCHAR[bytes[0]!] === 0) throw new ResponseParseError('invalid trailer field');
      this.#partial = Buffer.from(bytes);
      return data.length;
    }
    if (end + 4 > this.#maxHeadBytes) throw new ResponseParseError(`response trailers larger than ${this.#maxHeadBytes} bytes`);
    const trailers: Buffer[] = [];
    let pos = 0;
    while (pos < end + 2) {
      const eol = lineEndAt(bytes, pos, end);
      let colon = pos;
      while (colon < eol && TCHAR[bytes[colon]!] === 1) colon++;
      if (colon === pos || bytes[colon] !== 0x3a) throw new ResponseParseError('invalid trailer field');
      let vs = colon + 1;
      let ve = eol;
      while (vs < ve && (bytes[vs] === 0x20 || bytes[vs] === 0x09)) vs++;
      while (ve > vs && (bytes[ve - 1] === 0x20 || bytes[ve - 1] === 0x09)) ve--;
      for (let i = vs; i < ve; i++) if (VALUE[bytes[i]!] === 0) throw new ResponseParseError('invalid byte in a trailer value');
      trailers.push(Buffer.from(bytes.subarray(pos, colon)), Buffer.from(bytes.subarray(vs, ve)));
      pos = eol + 2;
    }
    this.#partial = null;
    this.#end(trailers);
    return off + end + 4 - prior;
  }
}

/** Index of the CR of the CRLF ending the line at `pos` (the head ends at `end`); a bare CR or LF is an error. */
function lineEndAt(buf: Buffer, pos: number, end: number): number {
  const lf = buf.indexOf(LF, pos);
  const eol = lf === -1 || lf > end + 1 ? end : lf - 1;
  if (buf[eol] !== CR || buf[eol + 1] !== LF) throw new ResponseParseError('header line not ended by CRLF');
  const cr = buf.indexOf(CR, pos);
  if (cr !== eol) throw new ResponseParseError('bare CR in the response head');
  return eol;
}

function parseContentLength(buf: Buffer, s: number, e: number): number {
  if (s === e || e - s > 15) throw new ResponseParseError('invalid Content-Length');
  let n = 0;
  for (let i = s; i < e; i++) {
    const d = buf[i]! - 0x30;
    if (d < 0 || d > 9) throw new ResponseParseError('invalid Content-Length');
    n = n * 10 + d;
  }
  return n;
}
