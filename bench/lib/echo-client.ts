import type * as net from 'node:net';
import { runClosedLoop, type ClosedLoopResult } from './closed-loop.ts';

/**
 * The client side of the echo scenarios (tcp-opaque, tls-passthrough): 1 KB messages to an
 * echo server, checked byte for byte. One implementation for plain TCP and TLS sockets: the
 * caller makes the socket and says which event means "ready to write" (`connect` for TCP,
 * `secureConnect` for TLS).
 */

/** 1 KB, not all one byte, so an echo that reorders or drops bytes is caught. */
const MESSAGE = Buffer.from(Array.from({ length: 1024 }, (_, i) => (i * 7 + 13) & 0xff));

export type ReadyEvent = 'connect' | 'secureConnect';

/** One persistent connection: one message in flight at a time, resolved when all of it came back. */
export class EchoConnection {
  readonly #socket: net.Socket;
  readonly #received = Buffer.allocUnsafe(MESSAGE.length);
  #got = 0;
  #pending: { resolve: () => void; reject: (err: Error) => void } | null = null;
  #failed: Error | null = null;

  private constructor(socket: net.Socket) {
    this.#socket = socket;
    socket.on('data', (c: Buffer) => this.#onData(c));
    socket.on('error', (err) => this.#fail(err));
    socket.on('close', () => this.#fail(new Error('connection closed by the other side')));
  }

  /** Resolves once `socket` is ready (`ready`), with the connection on it. */
  static open(socket: net.Socket, ready: ReadyEvent): Promise<EchoConnection> {
    return new Promise((resolve, reject) => {
      socket.once('error', reject);
      socket.once(ready, () => {
        socket.off('error', reject);
        resolve(new EchoConnection(socket));
      });
    });
  }

  roundTrip(): Promise<void> {
    if (this.#failed) return Promise.reject(this.#failed);
    return new Promise((resolve, reject) => {
      this.#got = 0;
      this.#pending = { resolve, reject };
      this.#socket.write(MESSAGE);
    });
  }

  #onData(c: Buffer): void {
    if (!this.#pending || this.#got + c.length > MESSAGE.length) return this.#fail(new Error('the echo sent bytes nobody asked for'));
    c.copy(this.#received, this.#got);
    this.#got += c.length;
    if (this.#got < MESSAGE.length) return;
    const p = this.#pending;
    this.#pending = null;
    if (this.#received.equals(MESSAGE)) p.resolve();
    else p.reject(new Error('the echo returned different bytes'));
  }

  #fail(err: Error): void {
    this.#failed ??= err;
    const p = this.#pending;
    this.#pending = null;
    p?.reject(err);
    this.#socket.destroy();
  }

  close(): void {
    this.#failed ??= new Error('closed');
    this.#socket.end();
  }
}

/**
 * Closed-loop round trips over `conns` for `seconds`, one caller per connection (a caller always
 * finds one idle), each round trip timed. Closes the connections when done.
 */
export async function runRoundTrips(conns: readonly EchoConnection[], seconds: number): Promise<ClosedLoopResult> {
  const idle = [...conns];
  try {
    return await runClosedLoop(conns.length, seconds, async () => {
      const c = idle.pop()!;
      try {
        await c.roundTrip();
      } finally {
        idle.push(c);
      }
    });
  } finally {
    for (const c of conns) c.close();
  }
}

/** Connect, send 1 KB, read it back, send FIN and wait for the other side's: one full connection. */
export function connectRoundTripClose(socket: net.Socket, ready: ReadyEvent): Promise<void> {
  return new Promise((resolve, reject) => {
    const received = Buffer.allocUnsafe(MESSAGE.length);
    let got = 0;
    let bad: string | null = null;
    socket.once(ready, () => socket.write(MESSAGE));
    socket.on('data', (c: Buffer) => {
      if (got + c.length > MESSAGE.length) {
        bad = 'the echo sent bytes nobody asked for';
        return void socket.destroy();
      }
      c.copy(received, got);
      got += c.length;
      if (got === MESSAGE.length) socket.end();
    });
    // TLS: the server's close_notify ends our side; plain TCP: its FIN.
    socket.on('end', () => socket.destroy());
    socket.once('error', (err) => (bad ??= err.message));
    socket.once('close', () => {
      if (bad) reject(new Error(bad));
      else if (got !== MESSAGE.length) reject(new Error(`closed after ${got} of ${MESSAGE.length} echoed bytes`));
      else if (!received.equals(MESSAGE)) reject(new Error('the echo returned different bytes'));
      else resolve();
    });
  });
}
