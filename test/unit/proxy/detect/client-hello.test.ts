// parseClientHello on real ClientHellos from Node's tls.connect (OpenSSL 3.5: post-quantum key
// shares included), truncated at every byte, re-fragmented across records, on synthetic
// malformed ones, and on random and mutated bytes: it never throws and never answers
// anything but the three shapes.
import { beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_HELLO_WINDOW, parseClientHello, type ClientHelloResult } from '../../../../src/data-plane/proxy/detect/client-hello.ts';
import { alpnExt, captureClientHello, clientHelloMessage, handshakeBytes, inRecords, seededRandom, serverNameExt } from './tls-bytes.ts';

const INCOMPLETE = { complete: false };
const NOT_TLS = { tls: false };

/** The answer is exactly one of the three shapes, with the right types. */
function wellShaped(r: ClientHelloResult): boolean {
  if ('tls' in r) return r.tls === false && Object.keys(r).length === 1;
  if (r.complete === false) return Object.keys(r).length === 1;
  return (r.sni === null || /^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/.test(r.sni)) && Array.isArray(r.alpn) && r.alpn.every((a) => typeof a === 'string' && a.length > 0);
}

describe('parseClientHello on real ClientHellos (Node tls.connect)', () => {
  const real: Record<string, Buffer> = {};
  beforeAll(async () => {
    real.sniAndAlpn = await captureClientHello({ servername: 'Orders.Shop.svc.cluster.local', ALPNProtocols: ['h2', 'http/1.1'] });
    real.sniOnly = await captureClientHello({ servername: 'api.example.com' });
    real.noSni = await captureClientHello({});
    real.alpnOnly = await captureClientHello({ ALPNProtocols: ['grpc-exp', 'h2'] });
    real.tls12 = await captureClientHello({ servername: 'legacy.example.com', maxVersion: 'TLSv1.2' });
    real.postQuantum = await captureClientHello({ servername: 'pq.example.com', ecdhCurve: 'X25519MLKEM768:X25519' });
    // Node still sends an IP literal as server_name (with DEP0123); RFC 6066 forbids it.
    process.noDeprecation = true;
    real.ipLiteral = await captureClientHello({ servername: '10.1.2.3' });
    process.noDeprecation = false;
  });

  it.each([
    ['sniAndAlpn', { complete: true, sni: 'orders.shop.svc.cluster.local', alpn: ['h2', 'http/1.1'] }],
    ['sniOnly', { complete: true, sni: 'api.example.com', alpn: [] }],
    ['noSni', { complete: true, sni: null, alpn: [] }],
    ['alpnOnly', { complete: true, sni: null, alpn: ['grpc-exp', 'h2'] }],
    ['tls12', { complete: true, sni: 'legacy.example.com', alpn: [] }],
    ['postQuantum', { complete: true, sni: 'pq.example.com', alpn: [] }],
    ['ipLiteral', { complete: true, sni: null, alpn: [] }],
  ])('%s', (name, expected) => {
    expect(parseClientHello(real[name]!)).toEqual(expected);
  });

  it('the IP-literal hello really carries the address (reported as null, not skipped by accident)', () => {
    expect(real.ipLiteral!.includes(Buffer.from('10.1.2.3'))).toBe(true);
  });

  it('the post-quantum hello carries an ML-KEM share and still fits one record', () => {
    // X25519MLKEM768's client share is 1,216 bytes; the whole hello stays far below 2^14.
    expect(real.postQuantum!.length).toBeGreaterThan(1216);
    expect(real.postQuantum!.length).toBeLessThan(CLIENT_HELLO_WINDOW);
    expect(real.postQuantum!.length).toBe(5 + real.postQuantum!.readUInt16BE(3));
  });

  it('is incomplete at every truncation, and complete only with the last byte', () => {
    for (const [name, hello] of Object.entries(real)) {
      const whole = parseClientHello(hello);
      for (let i = 0; i < hello.length; i++) {
        const r = parseClientHello(hello.subarray(0, i));
        if (!('complete' in r) || r.complete !== false) throw new Error(`${name} cut at ${i}/${hello.length}: ${JSON.stringify(r)}`);
      }
      expect(whole).toMatchObject({ complete: true });
    }
  });

  it('ignores what follows the ClientHello (early data, more records, garbage)', () => {
    const hello = real.sniAndAlpn!;
    for (const tail of [Buffer.from([0x17, 0x03, 0x03, 0x00, 0x01, 0x00]), Buffer.alloc(20000, 0xff), Buffer.from('GET / HTTP/1.1\r\n')]) {
      expect(parseClientHello(Buffer.concat([hello, tail]))).toEqual(parseClientHello(hello));
    }
  });

  it('reassembles a ClientHello split across records of 1, 7, 100 and 1000 bytes', () => {
    for (const hello of Object.values(real)) {
      const message = handshakeBytes(hello);
      for (const size of [1, 7, 100, 1000]) {
        expect(parseClientHello(inRecords(message, size))).toEqual(parseClientHello(hello));
      }
    }
  });

  it('a split ClientHello is incomplete at every truncation too', () => {
    const split = inRecords(handshakeBytes(real.sniAndAlpn!), 7);
    for (let i = 0; i < split.length; i++) expect(parseClientHello(split.subarray(0, i))).toEqual(INCOMPLETE);
    expect(parseClientHello(split)).toMatchObject({ complete: true, sni: 'orders.shop.svc.cluster.local' });
  });

  it('never throws on mutated real hellos (5,000 seeded mutations, each also truncated)', () => {
    const random = seededRandom(14);
    const sources = Object.values(real);
    for (let n = 0; n < 5000; n++) {
      const bytes = Buffer.from(sources[n % sources.length]!);
      const flips = 1 + Math.floor(random() * 4);
      for (let k = 0; k < flips; k++) bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
      const cut = bytes.subarray(0, Math.floor(random() * (bytes.length + 1)));
      for (const b of [bytes, cut]) {
        const r = parseClientHello(b);
        if (!wellShaped(r)) throw new Error(`mutation ${n}: ${JSON.stringify(r)}`);
      }
    }
  });
});

describe('parseClientHello on synthetic ClientHellos', () => {
  const ok = (f: Parameters<typeof clientHelloMessage>[0]) => inRecords(clientHelloMessage(f));
  const withExts = (...extensions: Array<[number, Buffer]>) => ok({ extensions });

  it.each<[string, Buffer, ClientHelloResult]>([
    ['no extensions block at all (TLS 1.2)', ok({}), { complete: true, sni: null, alpn: [] }],
    ['an empty extensions block', withExts(), { complete: true, sni: null, alpn: [] }],
    ['uppercase SNI comes back lowercase', withExts([0, serverNameExt([[0, 'API.Example.COM']])]), { complete: true, sni: 'api.example.com', alpn: [] }],
    ['an underscore in a label', withExts([0, serverNameExt([[0, 'my_svc.ns.svc']])]), { complete: true, sni: 'my_svc.ns.svc', alpn: [] }],
    ['a single-label name', withExts([0, serverNameExt([[0, 'localhost']])]), { complete: true, sni: 'localhost', alpn: [] }],
    ['an IPv4 literal', withExts([0, serverNameExt([[0, '192.168.0.1']])]), { complete: true, sni: null, alpn: [] }],
    ['an IPv6 literal', withExts([0, serverNameExt([[0, '::1']])]), { complete: true, sni: null, alpn: [] }],
    ['an unknown name_type is skipped', withExts([0, serverNameExt([[7, 'whatever'], [0, 'a.example']])]), { complete: true, sni: 'a.example', alpn: [] }],
    ['only an unknown name_type', withExts([0, serverNameExt([[7, 'whatever']])]), { complete: true, sni: null, alpn: [] }],
    ['a 63-byte label, 253 bytes in all', withExts([0, serverNameExt([[0, `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`]])]), { complete: true, sni: `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`, alpn: [] }],
    ['GREASE ALPN bytes kept one char per byte', withExts([16, alpnExt([Buffer.from([0x0a, 0x0a]), 'h2'])]), { complete: true, sni: null, alpn: ['\x0a\x0a', 'h2'] }],
    ['unknown extensions around the known ones', withExts([0x0a0a, Buffer.alloc(0)], [0, serverNameExt([[0, 'x.example']])], [51, Buffer.alloc(100, 3)], [16, alpnExt(['http/1.1'])], [0xfafa, Buffer.from([0])]), { complete: true, sni: 'x.example', alpn: ['http/1.1'] }],
    ['record version 0x0303', inRecords(clientHelloMessage({}), 16384, 0x0303), { complete: true, sni: null, alpn: [] }],
    ['record version 0x0304', inRecords(clientHelloMessage({}), 16384, 0x0304), { complete: true, sni: null, alpn: [] }],
    ['legacy_version 0x0301', ok({ legacyVersion: 0x0301 }), { complete: true, sni: null, alpn: [] }],
    ['an empty session id', ok({ sessionId: Buffer.alloc(0) }), { complete: true, sni: null, alpn: [] }],
  ])('accepts %s', (_name, bytes, expected) => {
    expect(parseClientHello(bytes)).toEqual(expected);
  });

  const hello = clientHelloMessage({ extensions: [[0, serverNameExt([[0, 'a.example']])]] });
  /** The same bytes with the last extension's length field (its data is 1 byte) claiming `n`. */
  const lastExtensionClaims = (n: number, bytes: Buffer) => {
    const out = Buffer.from(bytes);
    out.writeUInt16BE(n, out.length - 3);
    return out;
  };
  const record = (type: number, version: number, payload: Buffer) => Buffer.concat([Buffer.from([type, version >> 8, version & 0xff, payload.length >> 8, payload.length & 0xff]), payload]);

  it.each<[string, Buffer]>([
    ['an application_data record', record(0x17, 0x0303, hello)],
    ['an alert record', record(0x15, 0x0303, Buffer.from([2, 40]))],
    ['record version 0x0300 (SSL 3.0)', record(0x16, 0x0300, hello)],
    ['record version 0x0305', record(0x16, 0x0305, hello)],
    ['record version 0x0203', record(0x16, 0x0203, hello)],
    ['a zero-length record', Buffer.from([0x16, 0x03, 0x01, 0x00, 0x00])],
    ['a record longer than 2^14', Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x40, 0x01]), hello])],
    ['a ServerHello', record(0x16, 0x0303, Buffer.concat([Buffer.from([2]), hello.subarray(1)]))],
    ['a body shorter than any ClientHello', record(0x16, 0x0301, clientHelloMessage({}, 40).subarray(0, 44))],
    ['a body longer than any ClientHello can be', record(0x16, 0x0301, clientHelloMessage({}, 200000))],
    ['legacy_version 0x0203', ok({ legacyVersion: 0x0203 })],
    ['a 33-byte session id', ok({ sessionId: Buffer.alloc(33) })],
    ['an odd cipher_suites length', ok({ cipherSuites: Buffer.from([0x13, 0x01, 0x13]) })],
    ['no cipher suites', ok({ cipherSuites: Buffer.alloc(0) })],
    ['no compression methods', ok({ compression: Buffer.alloc(0) })],
    ['an extensions length past the end', ok({ extensions: [[0, serverNameExt([[0, 'a.example']])]], extensionsLengthOverride: 100 })],
    ['an extensions length short of the end', ok({ extensions: [[0, serverNameExt([[0, 'a.example']])], [16, alpnExt(['h2'])]], extensionsLengthOverride: 10 })],
    ['an extension whose length runs past the block', lastExtensionClaims(4, withExts([0x1234, Buffer.alloc(1)]))],
    ['server_name twice', withExts([0, serverNameExt([[0, 'a.example']])], [0, serverNameExt([[0, 'b.example']])])],
    ['any extension type twice', withExts([51, Buffer.alloc(4)], [51, Buffer.alloc(4)])],
    ['two host_names in one list', withExts([0, serverNameExt([[0, 'a.example'], [0, 'b.example']])])],
    ['an empty server_name list', withExts([0, Buffer.from([0, 0])])],
    ['an empty server_name extension', withExts([0, Buffer.alloc(0)])],
    ['an empty host_name', withExts([0, serverNameExt([[0, '']])])],
    ['a server_name list length that disagrees', withExts([0, Buffer.concat([Buffer.from([0, 20]), serverNameExt([[0, 'a.example']]).subarray(2)])])],
    ['a host_name with a space', withExts([0, serverNameExt([[0, 'a b.example']])])],
    ['a host_name with a NUL (the classic certificate-name trick)', withExts([0, serverNameExt([[0, 'good.example\0.evil.example']])])],
    ['a host_name in UTF-8', withExts([0, serverNameExt([[0, Buffer.from('bücher.example', 'utf8')]])])],
    ['a trailing dot', withExts([0, serverNameExt([[0, 'a.example.']])])],
    ['a leading dot', withExts([0, serverNameExt([[0, '.a.example']])])],
    ['an empty label', withExts([0, serverNameExt([[0, 'a..example']])])],
    ['a 64-byte label', withExts([0, serverNameExt([[0, `${'a'.repeat(64)}.example`]])])],
    ['a 254-byte name', withExts([0, serverNameExt([[0, `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(62)}`]])])],
    ['an empty ALPN list', withExts([16, Buffer.from([0, 0])])],
    ['an empty ALPN name', withExts([16, alpnExt(['h2', ''])])],
    ['an ALPN list length that disagrees', withExts([16, Buffer.concat([Buffer.from([0, 9]), alpnExt(['h2']).subarray(2)])])],
    ['an ALPN name running past its list', withExts([16, Buffer.from([0, 3, 5, 0x68, 0x32])])],
    ['a second record of another type', Buffer.concat([record(0x16, 0x0301, hello.subarray(0, 10)), record(0x17, 0x0301, hello.subarray(10))])],
    ['a second record with a bad version', Buffer.concat([record(0x16, 0x0301, hello.subarray(0, 10)), record(0x16, 0x0200, hello.subarray(10))])],
  ])('refuses %s', (_name, bytes) => {
    expect(parseClientHello(bytes)).toEqual(NOT_TLS);
  });

  it.each<[string, number[]]>([
    ['a first byte that is not a handshake record', [0x47]],
    ['a second byte that is not major version 3', [0x16, 0x02]],
    ['a minor version out of 1..4', [0x16, 0x03, 0x00]],
    ['a handshake type other than client_hello', [0x16, 0x03, 0x01, 0x00, 0x30, 0x02]],
    ['a handshake length under the minimum', [0x16, 0x03, 0x01, 0x00, 0x30, 0x01, 0x00, 0x00, 0x10]],
  ])('says no as early as %s', (_name, bytes) => {
    expect(parseClientHello(Buffer.from(bytes))).toEqual(NOT_TLS);
  });

  it('is incomplete for nothing, and for every valid start', () => {
    expect(parseClientHello(Buffer.alloc(0))).toEqual(INCOMPLETE);
    for (const start of [[0x16], [0x16, 0x03], [0x16, 0x03, 0x01], [0x16, 0x03, 0x01, 0x02, 0x00], [0x16, 0x03, 0x01, 0x02, 0x00, 0x01]]) {
      expect(parseClientHello(Buffer.from(start))).toEqual(INCOMPLETE);
    }
  });

  it('reads a ClientHello that fills one whole 2^14 record', () => {
    const base = clientHelloMessage({ extensions: [[0, serverNameExt([[0, 'big.example']])], [21, Buffer.alloc(0)]] }).length;
    // padding (21) sized so that the handshake message is exactly 2^14 bytes
    const message = clientHelloMessage({ extensions: [[0, serverNameExt([[0, 'big.example']])], [21, Buffer.alloc(16384 - base)]] });
    expect(message.length).toBe(16384);
    const bytes = inRecords(message);
    expect(bytes.length).toBe(CLIENT_HELLO_WINDOW);
    expect(parseClientHello(bytes)).toEqual({ complete: true, sni: 'big.example', alpn: [] });
  });

  it('looks no further than one record: a hello split past the window stays incomplete', () => {
    // 3,000 bytes of hello in 1-byte records: 18,000 bytes on the wire, more than the window.
    const message = clientHelloMessage({ extensions: [[0, serverNameExt([[0, 'far.example']])], [21, Buffer.alloc(2900)]] });
    const bytes = inRecords(message, 1);
    expect(bytes.length).toBeGreaterThan(CLIENT_HELLO_WINDOW);
    expect(parseClientHello(bytes)).toEqual(INCOMPLETE);
    // The same hello in 100-byte records fits, and is read.
    expect(parseClientHello(inRecords(message, 100))).toEqual({ complete: true, sni: 'far.example', alpn: [] });
  });

  it('never throws on random bytes (20,000 seeded buffers, half of them with a TLS record header)', () => {
    const random = seededRandom(2026);
    for (let n = 0; n < 20000; n++) {
      const bytes = Buffer.alloc(Math.floor(random() * 400));
      for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(random() * 256);
      if (n % 2 === 0 && bytes.length >= 9) {
        // a plausible header, so the fuzz reaches the handshake and ClientHello code
        bytes[0] = 0x16;
        bytes[1] = 0x03;
        bytes[2] = 1 + Math.floor(random() * 4);
        bytes.writeUInt16BE(Math.min(bytes.length - 5, 1 + Math.floor(random() * 500)), 3);
        bytes[5] = 1;
      }
      const r = parseClientHello(bytes);
      if (!wellShaped(r)) throw new Error(`case ${n}: ${JSON.stringify(r)}`);
    }
  });
});
