import type { Socket } from 'node:net';
import { TlsSetupError } from './errors.ts';

/**
 * Protocol detection for PERMISSIVE ports: is the client starting a TLS handshake or
 * speaking plaintext? A TLS connection opens with a handshake record: content type 22
 * (0x16) followed by a legacy record version whose major byte is 3 (RFC 8446 §5.1; TLS 1.3
 * clients still write 0x03 0x01 there). Nothing else a client speaks first starts that way
 * (HTTP/1 starts with a method letter, the HTTP/2 preface with "P").
 *
 * The bytes read are pushed back with `socket.unshift`, so whoever reads next (a TLSSocket
 * wrapping the socket, or a plaintext pipe) sees the stream from its first byte. A client
 * that sends nothing before `timeoutMs` (a server-speaks-first protocol) is plaintext.
 */
const TLS_HANDSHAKE_RECORD = 0x16;
const TLS_MAJOR_VERSION = 0x03;
/** Type and major version decide it; reading more would only delay the answer. */
const BYTES_NEEDED = 2;

export function detectTls(socket: Socket, timeoutMs: number): Promise<'tls' | 'plaintext'> {
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    return Promise.reject(new TlsSetupError('TLS_BAD_TIMEOUT', `detectTls: timeoutMs must be a positive number of milliseconds, got ${timeoutMs}`));
  }
  return new Promise((resolve, reject) => {
    const seen: Buffer[] = [];
    let length = 0;

    const finish = (error?: Error, ended = false): void => {
      clearTimeout(timer);
      socket.off('readable', onReadable);
      socket.off('end', onEnd);
      socket.off('error', onError);
      // Give the bytes back in the order they came, before anything else can read. (After
      // 'end' a stream refuses unshift; the peer is gone and the caller sees a closed socket.)
      if (length > 0 && !ended) socket.unshift(seen.length === 1 ? seen[0]! : Buffer.concat(seen, length));
      if (error) {
        reject(error);
        return;
      }
      // One lone 0x16 byte before the timeout counts as TLS: nothing plaintext starts with it.
      const looksTls = byteAt(seen, 0) === TLS_HANDSHAKE_RECORD && (length < BYTES_NEEDED || byteAt(seen, 1) === TLS_MAJOR_VERSION);
      resolve(looksTls ? 'tls' : 'plaintext');
    };
    const onReadable = (): void => {
      let chunk: Buffer | null;
      while ((chunk = socket.read() as Buffer | null) !== null) {
        seen.push(chunk);
        length += chunk.length;
      }
      if (length >= BYTES_NEEDED) finish();
    };
    const onEnd = (): void => finish(undefined, true);
    const onError = (err: Error): void => finish(err);
    const timer = setTimeout(() => finish(), timeoutMs);

    socket.on('readable', onReadable);
    socket.once('end', onEnd);
    socket.once('error', onError);
  });
}

function byteAt(chunks: readonly Buffer[], index: number): number | undefined {
  for (const chunk of chunks) {
    if (index < chunk.length) return chunk[index];
    index -= chunk.length;
  }
  return undefined;
}
