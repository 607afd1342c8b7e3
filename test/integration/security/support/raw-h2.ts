import * as net from 'node:net';
import * as tls from 'node:tls';
import { FLAG, FRAME, frame, frameReader, literalField, PREFACE } from './h2-frames.ts';

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

export function rawH2Request(port: number, fields: readonly (readonly [string, string])[], tlsOptions?: tls.ConnectionOptions, quietMs = 3_000): Promise<RawH2Outcome> {
  return new Promise((resolve, reject) => {
    const socket: net.Socket = tlsOptions ? tls.connect({ ...tlsOptions, host: '127.0.0.1', port, ALPNProtocols: ['h2'] }) : net.connect(port, '127.0.0.1');
    let data = '';
    let reset = false;
    let timer: NodeJS.Timeout | undefined;
    const settle = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ data, reset });
    };
    socket.once(tlsOptions ? 'secureConnect' : 'connect', () => {
      const block = Buffer.concat(fields.map(([n, v]) => literalField(n, v)));
      socket.write(Buffer.concat([PREFACE, frame(FRAME.SETTINGS, 0, 0, Buffer.alloc(0)), frame(FRAME.HEADERS, FLAG.END_STREAM | FLAG.END_HEADERS, 1, block)]));
      timer = setTimeout(settle, quietMs);
    });
    socket.on(
      'data',
      frameReader(
        (bytes) => socket.write(bytes),
        ({ type, flags, stream, payload }) => {
          if (stream !== 1) return;
          if (type === FRAME.DATA) data += payload.toString('latin1');
          if (type === FRAME.RST_STREAM) reset = true;
          if (type === FRAME.RST_STREAM || ((type === FRAME.DATA || type === FRAME.HEADERS) && (flags & FLAG.END_STREAM) !== 0)) settle();
        },
      ),
    );
    socket.once('close', settle);
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}
