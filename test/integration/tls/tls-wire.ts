import { connect as netConnect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

/**
 * What two TLS endpoints say to each other in the clear, for the key exchange tests: a TCP relay
 * on 127.0.0.1 that forwards both ways and keeps every byte, and readers of the plaintext
 * handshake messages of TLS 1.3 (RFC 8446 §4.1.2 ClientHello, §4.1.3 ServerHello and
 * HelloRetryRequest; §4.2.7 supported_groups, §4.2.8 key_share). Everything after the
 * ServerHello is encrypted (record type 23), so a plaintext handshake record from the client is
 * a ClientHello: two of them mean the server asked again (HelloRetryRequest).
 */
export interface Relay {
  readonly port: number;
  /** Bytes the client sent, per connection, in order. */
  readonly fromClient: Buffer[];
  /** Bytes the server sent, per connection, in order. */
  readonly fromServer: Buffer[];
  close(): Promise<void>;
}

export async function relay(targetPort: number): Promise<Relay> {
  const fromClient: Buffer[] = [];
  const fromServer: Buffer[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const i = fromClient.length;
    fromClient.push(Buffer.alloc(0));
    fromServer.push(Buffer.alloc(0));
    const upstream = netConnect(targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {});
      s.once('close', () => sockets.delete(s));
    }
    client.on('data', (d: Buffer) => {
      fromClient[i] = Buffer.concat([fromClient[i]!, d]);
      upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      fromServer[i] = Buffer.concat([fromServer[i]!, d]);
      client.write(d);
    });
    client.once('end', () => upstream.end());
    upstream.once('end', () => client.end());
    client.once('close', () => upstream.destroy());
    upstream.once('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    fromClient,
    fromServer,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** IANA code points of the groups these tests meet. */
export const GROUP = { secp256r1: 0x0017, secp384r1: 0x0018, X25519: 0x001d, X25519MLKEM768: 0x11ec } as const;

export interface ClientHelloGroups {
  /** supported_groups, in the client's order. */
  readonly groups: number[];
  /** key_share entries: group and key length. */
  readonly keyShares: { group: number; length: number }[];
  /** Size of the ClientHello record on the wire (header included). */
  readonly recordBytes: number;
}

export interface ServerHelloGroup {
  /** The group of the server's key_share (a HelloRetryRequest names the group it asks for). */
  readonly group: number;
  readonly helloRetryRequest: boolean;
}

const HANDSHAKE = 22;
const EXT_SUPPORTED_GROUPS = 10;
const EXT_KEY_SHARE = 51;
/** RFC 8446 §4.1.3: the random of a HelloRetryRequest, SHA-256("HelloRetryRequest"). */
const HRR_RANDOM = Buffer.from('cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c', 'hex');

/** The plaintext handshake records (type 22) at the start of one direction of a connection. */
function plaintextHandshakes(bytes: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at + 5 <= bytes.length; ) {
    const type = bytes[at]!;
    const length = bytes.readUInt16BE(at + 3);
    if (at + 5 + length > bytes.length) break;
    if (type === HANDSHAKE) out.push(bytes.subarray(at, at + 5 + length));
    at += 5 + length;
  }
  return out;
}

/** Extensions of a hello body, from `at` (the extensions' length field). */
function extensions(body: Buffer, at: number): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  const end = at + 2 + body.readUInt16BE(at);
  for (let p = at + 2; p + 4 <= end; ) {
    const type = body.readUInt16BE(p);
    const length = body.readUInt16BE(p + 2);
    out.set(type, body.subarray(p + 4, p + 4 + length));
    p += 4 + length;
  }
  return out;
}

/** Every ClientHello the client sent (one, or two after a HelloRetryRequest). */
export function clientHellos(fromClient: Buffer): ClientHelloGroups[] {
  return plaintextHandshakes(fromClient).map((record) => {
    const body = record.subarray(5 + 4); // record header, handshake header
    let at = 2 + 32; // legacy_version, random
    at += 1 + body[at]!; // legacy_session_id
    at += 2 + body.readUInt16BE(at); // cipher_suites
    at += 1 + body[at]!; // legacy_compression_methods
    const ext = extensions(body, at);
    const sg = ext.get(EXT_SUPPORTED_GROUPS) ?? Buffer.alloc(2);
    const groups: number[] = [];
    for (let p = 2; p < 2 + sg.readUInt16BE(0); p += 2) groups.push(sg.readUInt16BE(p));
    const ks = ext.get(EXT_KEY_SHARE) ?? Buffer.alloc(2);
    const keyShares: { group: number; length: number }[] = [];
    for (let p = 2; p < 2 + ks.readUInt16BE(0); ) {
      const length = ks.readUInt16BE(p + 2);
      keyShares.push({ group: ks.readUInt16BE(p), length });
      p += 4 + length;
    }
    return { groups, keyShares, recordBytes: record.length };
  });
}

/** Every ServerHello (a HelloRetryRequest first, if the server asked again) and the group it names. */
export function serverHellos(fromServer: Buffer): ServerHelloGroup[] {
  return plaintextHandshakes(fromServer).map((record) => {
    const body = record.subarray(5 + 4);
    const random = body.subarray(2, 34);
    let at = 2 + 32;
    at += 1 + body[at]!; // legacy_session_id_echo
    at += 2 + 1; // cipher_suite, legacy_compression_method
    const ks = extensions(body, at).get(EXT_KEY_SHARE);
    if (ks === undefined) throw new Error('a ServerHello without key_share');
    return { group: ks.readUInt16BE(0), helloRetryRequest: random.equals(HRR_RANDOM) };
  });
}
