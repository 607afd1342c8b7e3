import type { Socket } from 'node:net';

/**
 * Does a plaintext client speak HTTP/2 with prior knowledge (h2c, what gRPC clients do to a
 * plaintext target) or HTTP/1.x? RFC 9113 §3.4: an h2c client opens with the preface
 * "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"; no HTTP/1.x method is "PRI", and "PRI " (four bytes)
 * also tells it apart from WebDAV's PROPFIND/PROPPATCH. Most requests are decided by their
 * first byte. The bytes read are pushed back (`unshift`), so the server that gets the socket
 * next reads the stream from its first byte. A client that sends nothing before `timeoutMs`,
 * or closes, is handed to HTTP/1.1 (whose own head timeout then applies).
 */
const PREFACE_START = Buffer.from('PRI ', 'latin1');

export function detectH2c(socket: Socket, timeoutMs: number): Promise<'h2c' | 'http1'> {
  return new Promise((resolve) => {
    const seen: Buffer[] = [];
    let length = 0;
    let done = false;
    const finish = (ended: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.off('readable', onReadable);
      socket.off('end', onEnd);
      socket.off('error', onEnd);
      if (length > 0 && !ended) socket.unshift(seen.length === 1 ? seen[0]! : Buffer.concat(seen, length));
      resolve(matches(seen, PREFACE_START.length) ? 'h2c' : 'http1');
    };
    const onReadable = (): void => {
      let chunk: Buffer | null;
      while ((chunk = socket.read() as Buffer | null) !== null) {
        seen.push(chunk);
        length += chunk.length;
      }
      if (length >= PREFACE_START.length || !matches(seen, length)) finish(false);
    };
    const onEnd = (): void => finish(true);
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.on('readable', onReadable);
    socket.once('end', onEnd);
    socket.once('error', onEnd);
  });
}

/** The first `n` bytes seen (at most the preface start) all match "PRI ". */
function matches(chunks: readonly Buffer[], n: number): boolean {
  let i = 0;
  for (const chunk of chunks) {
    for (let j = 0; j < chunk.length && i < n && i < PREFACE_START.length; j++, i++) {
      if (chunk[j] !== PREFACE_START[i]) return false;
    }
  }
  return i >= Math.min(n, PREFACE_START.length);
}
