import * as net from 'node:net';
import * as tls from 'node:tls';

/**
 * One HTTP/2 request written as raw frames, for heads node's own client refuses to send (two
 * `host` fields, for instance): the connection preface, an empty SETTINGS, then one HEADERS
 * frame (END_STREAM | END_HEADERS, stream 1) whose block is HPACK "literal without indexing,
 * new name" entries — no Huffman, no table, so any field list can be written as given.
 * Resolves with the DATA payloads the server sent on stream 1 (the error body is plain JSON)
 * and whether it reset the stream, once the stream ends or `quietMs` passes.
 */
export interface RawH2Outcome {
  /** Concatenated DATA payloads of stream 1. */
  data: string;
  /** RST_STREAM seen on stream 1. */
  reset: boolean;
}

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}

function literal(name: string, value: string): Buffer {
  if (name.length > 126 || value.length > 126) throw new Error('raw-h2 writes short fields only');
  return Buffer.concat([Buffer.from([0x00, name.length]), Buffer.from(name, 'latin1'), Buffer.from([value.length]), Buffer.from(value, 'latin1')]);
}

export function rawH2Request(port: number, fields: readonly (readonly [string, string])[], tlsOptions?: tls.ConnectionOptions, quietMs = 3_000): Promise<RawH2Outcome> {
  return new Promise((resolve, reject) => {
    const socket: net.Socket = tlsOptions ? tls.connect({ ...tlsOptions, host: '127.0.0.1', port, ALPNProtocols: ['h2'] }) : net.connect(port, '127.0.0.1');
    let buffered = Buffer.alloc(0);
    let data = '';
    let reset = false;
    let timer: NodeJS.Timeout | undefined;
    const settle = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ data, reset });
    };
    socket.once(tlsOptions ? 'secureConnect' : 'connect', () => {
      const block = Buffer.concat(fields.map(([n, v]) => literal(n, v)));
      socket.write(Buffer.concat([PREFACE, frame(4, 0, 0, Buffer.alloc(0)), frame(1, 0x5, 1, block)]));
      timer = setTimeout(settle, quietMs);
    });
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 9) {
        const length = buffered.readUIntBE(0, 3);
        if (buffered.length < 9 + length) break;
        const type = buffered[3]!;
        const flags = buffered[4]!;
        const stream = buffered.readUInt32BE(5) & 0x7fffffff;
        const payload = buffered.subarray(9, 9 + length);
        buffered = buffered.subarray(9 + length);
        // Acknowledge the server's SETTINGS so it proceeds.
        if (type === 4 && (flags & 0x1) === 0) socket.write(frame(4, 0x1, 0, Buffer.alloc(0)));
        if (stream !== 1) continue;
        if (type === 0) data += payload.toString('latin1');
        if (type === 3) reset = true;
        if (type === 3 || ((type === 0 || type === 1) && (flags & 0x1) !== 0)) return settle();
      }
    });
    socket.once('close', settle);
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}
