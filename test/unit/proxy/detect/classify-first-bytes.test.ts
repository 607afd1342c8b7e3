// The decision table of first-bytes detection, on byte strings (the socket side is in
// test/integration/proxy/detect/first-bytes.test.ts): what decides, what waits for more, and
// where the size bounds cut the wait short.
import { describe, expect, it } from 'vitest';
import { classifyFirstBytes, DETECT_MAX_BYTES, HTTP1_LINE_BOUND } from '../../../../src/data-plane/proxy/detect/first-bytes.ts';
import { clientHelloMessage, inRecords, seededRandom, serverNameExt, alpnExt } from './tls-bytes.ts';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');
const PREFACE = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';

describe('classifyFirstBytes', () => {
  it.each<[string, Buffer, ReturnType<typeof classifyFirstBytes>]>([
    ['an HTTP/1.1 GET', b('GET / HTTP/1.1\r\nHost: a\r\n\r\n'), { protocol: 'http1' }],
    ['HTTP/1.0, decided before the CRLF', b('POST /orders?id=1 HTTP/1.0'), { protocol: 'http1' }],
    ['an absolute-form target (proxy request)', b('GET http://a.example/x HTTP/1.1\r\n'), { protocol: 'http1' }],
    ['CONNECT authority-form', b('CONNECT a.example:443 HTTP/1.1\r\n'), { protocol: 'http1' }],
    ['OPTIONS *', b('OPTIONS * HTTP/1.1\r\n'), { protocol: 'http1' }],
    ['an extension method token', b('M-SEARCH * HTTP/1.1\r\n'), { protocol: 'http1' }],
    ['obs-text in the target', Buffer.concat([b('GET /caf'), Buffer.from([0xe9]), b(' HTTP/1.1\r\n')]), { protocol: 'http1' }],
    ['the h2 preface', b(PREFACE), { protocol: 'h2' }],
    ['the h2 preface and a SETTINGS frame', Buffer.concat([b(PREFACE), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]), { protocol: 'h2' }],
    ['PRI with an HTTP/1.1 version is an HTTP/1 request line', b('PRI * HTTP/1.1\r\n'), { protocol: 'http1' }],
    ['the preface with a wrong tail', b('PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n'), { protocol: 'opaque' }],
    ['HTTP/2.0 in a request line (not the preface)', b('GET / HTTP/2.0\r\n'), { protocol: 'opaque' }],
    ['lowercase http/1.1 (the version is case-sensitive)', b('GET / http/1.1\r\n'), { protocol: 'opaque' }],
    ['HTTP/1.x without a digit', b('GET / HTTP/1.x\r\n'), { protocol: 'opaque' }],
    ['HTTP/0.9 (no version)', b('GET /\r\n'), { protocol: 'opaque' }],
    ['two spaces after the method', b('GET  / HTTP/1.1\r\n'), { protocol: 'opaque' }],
    ['a tab instead of a space', b('GET\t/ HTTP/1.1\r\n'), { protocol: 'opaque' }],
    ['a leading CRLF', b('\r\nGET / HTTP/1.1\r\n'), { protocol: 'opaque' }],
    ['a 33-character method', b(`${'A'.repeat(33)} / HTTP/1.1\r\n`), { protocol: 'opaque' }],
    ['a NUL byte', Buffer.from([0]), { protocol: 'opaque' }],
    ['Redis RESP', b('*1\r\n$4\r\nPING\r\n'), { protocol: 'opaque' }],
    ['a Redis inline command', b('PING\r\n'), { protocol: 'opaque' }],
    ['Redis SET inline', b('SET key value\r\n'), { protocol: 'opaque' }],
    ['a Postgres SSLRequest', Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]), { protocol: 'opaque' }],
    ['a memcached command', b('get foo\r\n'), { protocol: 'opaque' }],
    ['an SSH banner', b('SSH-2.0-OpenSSH_9.6\r\n'), { protocol: 'opaque' }],
    ['SSLv2-compatible hello', Buffer.from([0x80, 0x2e, 0x01, 0x03, 0x01]), { protocol: 'opaque' }],
    ['0x16 then not 0x03', Buffer.from([0x16, 0x00]), { protocol: 'opaque' }],
    ['a malformed ClientHello', inRecords(clientHelloMessage({ cipherSuites: Buffer.alloc(0) })), { protocol: 'opaque' }],
    [
      'a ClientHello',
      inRecords(clientHelloMessage({ extensions: [[0, serverNameExt([[0, 'Shop.Example']])], [16, alpnExt(['h2', 'http/1.1'])]] })),
      { protocol: 'tls', sni: 'shop.example', alpn: ['h2', 'http/1.1'] },
    ],
    ['a ClientHello without SNI', inRecords(clientHelloMessage({ extensions: [] })), { protocol: 'tls', sni: null, alpn: [] }],
  ])('%s', (_name, bytes, expected) => {
    expect(classifyFirstBytes(bytes)).toEqual(expected);
  });

  it.each<[string, Buffer]>([
    ['nothing', Buffer.alloc(0)],
    ['one method letter', b('G')],
    ['a method', b('DELETE')],
    ['a method and a space', b('GET ')],
    ['a partial target', b('GET /orders')],
    ['a target and a space', b('GET /orders ')],
    ['a partial version', b('GET /orders HTTP/1')],
    ['"HTTP/1." without its digit', b('GET / HTTP/1.')],
    ['P (preface or a method)', b('P')],
    ['PRI * HTTP/ (both still possible)', b('PRI * HTTP/')],
    ['most of the preface', b(PREFACE.slice(0, 23))],
    ['a TLS record type byte', Buffer.from([0x16])],
    ['a TLS record header', Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00])],
    ['most of a ClientHello', inRecords(clientHelloMessage({ extensions: [] })).subarray(0, 40)],
  ])('waits for more after %s', (_name, bytes) => {
    expect(classifyFirstBytes(bytes)).toBeUndefined();
  });

  it(`follows a request line ${HTTP1_LINE_BOUND} bytes and no further: a long valid target is HTTP/1`, () => {
    const line = b(`GET /${'a'.repeat(HTTP1_LINE_BOUND)}`);
    expect(classifyFirstBytes(line.subarray(0, HTTP1_LINE_BOUND - 1))).toBeUndefined();
    expect(classifyFirstBytes(line.subarray(0, HTTP1_LINE_BOUND))).toEqual({ protocol: 'http1' });
  });

  it(`calls a ClientHello that does not fit ${DETECT_MAX_BYTES} bytes TLS without an SNI`, () => {
    const message = clientHelloMessage({ extensions: [[0, serverNameExt([[0, 'far.example']])], [21, Buffer.alloc(2900)]] });
    const bytes = inRecords(message, 1); // ~18 KB on the wire
    expect(classifyFirstBytes(bytes.subarray(0, DETECT_MAX_BYTES - 1))).toBeUndefined();
    expect(classifyFirstBytes(bytes.subarray(0, DETECT_MAX_BYTES))).toEqual({ protocol: 'tls', sni: null, alpn: [] });
    expect(classifyFirstBytes(bytes)).toEqual({ protocol: 'tls', sni: null, alpn: [] });
  });

  it('always decides once DETECT_MAX_BYTES are in, whatever they are (10,000 seeded buffers)', () => {
    const random = seededRandom(7);
    const starts = [b('GET /'), b('PRI * HTTP/'), Buffer.from([0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0x00, 0x3f, 0xfc]), Buffer.alloc(0)];
    for (let n = 0; n < 10000; n++) {
      const start = starts[n % starts.length]!;
      const bytes = Buffer.alloc(n % 50 === 0 ? DETECT_MAX_BYTES : Math.floor(random() * 300));
      start.copy(bytes);
      for (let i = start.length; i < bytes.length; i++) bytes[i] = n % 3 === 0 ? 0x61 + Math.floor(random() * 26) : Math.floor(random() * 256);
      const v = classifyFirstBytes(bytes);
      if (bytes.length >= DETECT_MAX_BYTES && v === undefined) throw new Error(`case ${n}: undecided at the bound`);
      if (v !== undefined && !['http1', 'h2', 'tls', 'opaque'].includes(v.protocol)) throw new Error(`case ${n}: ${JSON.stringify(v)}`);
    }
  });
});
