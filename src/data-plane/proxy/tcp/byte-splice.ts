import type * as net from 'node:net';

/**
 * Joins two connected sockets into one opaque byte stream, both ways, with backpressure
 * (stream.pipe pauses the faster side). Both sockets must be created with allowHalfOpen:
 * a FIN from one side is passed on as a FIN to the other (`end()`), and the other direction
 * keeps flowing until it ends too — protocols that half-close (a client sending its last
 * request, then reading the answer) depend on it. An error or an abrupt close on either side
 * destroys both: a stream cut on one leg must look cut on the other, never complete.
 *
 * `onClosed` runs once, when both sockets have closed.
 */
export function spliceSockets(a: net.Socket, b: net.Socket, onClosed: () => void): void {
  let open = 2;
  const cut = (): void => {
    a.destroy();
    b.destroy();
  };
  const closed = (hadError: boolean): void => {
    if (hadError) cut();
    if (--open === 0) onClosed();
  };
  for (const s of [a, b]) {
    s.on('error', cut);
    s.once('close', (hadError) => {
      // A clean close means both directions ended; anything else (destroy() by a peer reset
      // or a timeout) is a cut, passed on to the other side.
      closed(hadError || !s.readableEnded || !s.writableFinished);
    });
  }
  a.pipe(b);
  b.pipe(a);
}
