// Test helpers for protocol detection: real ClientHellos as Node's tls.connect writes them,
// synthetic ones built field by field (for the malformed cases a real client never sends), and
// a seeded random source for the fuzz-ish tests (the same bytes on every run).
import * as net from 'node:net';
import * as tls from 'node:tls';

/**
 * The first TLS record(s) a real `tls.connect(options)` sends: a loopback server reads until
 * the ClientHello handshake message is whole, then drops the connection.
 */
export async function captureClientHello(options: tls.ConnectionOptions): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const captured = new Promise<Buffer>((resolve, reject) => {
      server.once('connection', (socket) => {
        const chunks: Buffer[] = [];
        socket.on('error', () => {});
        socket.on('data', (chunk: Buffer) => {
          chunks.push(chunk);
          const all = Buffer.concat(chunks);
          if (all.length >= 9 && all.length >= 5 + all.readUInt16BE(3)) {
            socket.destroy();
            resolve(all.subarray(0, 5 + all.readUInt16BE(3)));
          }
        });
        socket.on('close', () => reject(new Error('the client closed before its ClientHello was whole')));
      });
    });
    const port = (server.address() as net.AddressInfo).port;
    const client = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...options });
    client.on('error', () => {});
    try {
      return await captured;
    } finally {
      client.destroy();
    }
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

export interface HelloFields {
  legacyVersion?: number;
  random?: Buffer;
  sessionId?: Buffer;
  cipherSuites?: Buffer;
  compression?: Buffer;
  /** [type, data] in order; undefined = no extensions block at all (TLS 1.2 allows it). */
  extensions?: Array<[number, Buffer]>;
  /** Overrides the extensions block's declared length. */
  extensionsLengthOverride?: number;
}

const u8 = (n: number): Buffer => Buffer.from([n & 0xff]);
const u16 = (n: number): Buffer => Buffer.from([(n >> 8) & 0xff, n & 0xff]);
const u24 = (n: number): Buffer => Buffer.from([(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);

/** The ClientHello handshake message (header + body), built from its fields. */
export function clientHelloMessage(f: HelloFields = {}, bodyLengthOverride?: number): Buffer {
  const sessionId = f.sessionId ?? Buffer.alloc(32, 7);
  const suites = f.cipherSuites ?? Buffer.from([0x13, 0x01, 0x13, 0x02]);
  const compression = f.compression ?? Buffer.from([0]);
  const parts = [
    u16(f.legacyVersion ?? 0x0303),
    f.random ?? Buffer.alloc(32, 1),
    u8(sessionId.length),
    sessionId,
    u16(suites.length),
    suites,
    u8(compression.length),
    compression,
  ];
  if (f.extensions !== undefined) {
    const exts = Buffer.concat(f.extensions.map(([type, data]) => Buffer.concat([u16(type), u16(data.length), data])));
    parts.push(u16(f.extensionsLengthOverride ?? exts.length), exts);
  }
  const body = Buffer.concat(parts);
  return Buffer.concat([u8(1), u24(bodyLengthOverride ?? body.length), body]);
}

/** server_name extension data: a list of (name_type, name) entries. */
export function serverNameExt(entries: Array<[number, Buffer | string]>): Buffer {
  const list = Buffer.concat(entries.map(([type, name]) => {
    const bytes = typeof name === 'string' ? Buffer.from(name, 'latin1') : name;
    return Buffer.concat([u8(type), u16(bytes.length), bytes]);
  }));
  return Buffer.concat([u16(list.length), list]);
}

export function alpnExt(names: Array<Buffer | string>): Buffer {
  const list = Buffer.concat(names.map((n) => {
    const bytes = typeof n === 'string' ? Buffer.from(n, 'latin1') : n;
    return Buffer.concat([u8(bytes.length), bytes]);
  }));
  return Buffer.concat([u16(list.length), list]);
}

/** A handshake message cut into handshake records of at most `fragment` bytes each. */
export function inRecords(message: Buffer, fragment = 16384, version = 0x0301): Buffer {
  const records: Buffer[] = [];
  for (let i = 0; i < message.length; i += fragment) {
    const piece = message.subarray(i, Math.min(i + fragment, message.length));
    records.push(Buffer.concat([u8(0x16), u16(version), u16(piece.length), piece]));
  }
  return Buffer.concat(records);
}

/** The handshake messages inside a buffer of handshake records (the record headers removed). */
export function handshakeBytes(records: Buffer): Buffer {
  const out: Buffer[] = [];
  for (let i = 0; i + 5 <= records.length; ) {
    const len = records.readUInt16BE(i + 3);
    out.push(records.subarray(i + 5, i + 5 + len));
    i += 5 + len;
  }
  return Buffer.concat(out);
}

/** mulberry32: a small seeded PRNG, so a failing fuzz case is the same bytes on every run. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
