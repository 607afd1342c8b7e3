import * as net from 'node:net';
import * as tls from 'node:tls';

export interface RawOutcome {
  /** Everything the server sent before closing. */
  response: string;
  /** The server closed the connection (rather than the deadline passing). */
  closed: boolean;
}

/**
 * Sends raw bytes (over TLS when tlsOptions are given) and collects the answer until the
 * server closes, or `quietMs` after the last byte when it keeps the connection open.
 */
export function rawExchange(port: number, bytes: string | Buffer, tlsOptions?: tls.ConnectionOptions, quietMs = 3_000): Promise<RawOutcome> {
  return new Promise((resolve, reject) => {
    const socket: net.Socket = tlsOptions ? tls.connect({ ...tlsOptions, host: '127.0.0.1', port }) : net.connect(port, '127.0.0.1');
    let response = '';
    let timer: NodeJS.Timeout | undefined;
    const settle = (closed: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ response, closed });
    };
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => settle(false), quietMs);
    };
    socket.once(tlsOptions ? 'secureConnect' : 'connect', () => {
      socket.write(bytes);
      arm();
    });
    socket.on('data', (c: Buffer) => {
      response += c.toString('latin1');
      arm();
    });
    socket.once('close', () => settle(true));
    socket.once('error', (err: Error & { code?: string }) => {
      // A reset after the server answered is still "closed".
      if (response !== '' || err.code === 'ECONNRESET') return;
      clearTimeout(timer);
      reject(err);
    });
  });
}
