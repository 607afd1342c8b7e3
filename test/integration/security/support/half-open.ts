import * as net from 'node:net';
import * as tls from 'node:tls';
import type { Registry } from 'prom-client';

/**
 * The attacker's side of connection exhaustion: real TCP sockets that start a TLS handshake
 * and stop half-way (a ClientHello cut in two, captured from node's own TLS client), that send
 * half a request head, or that send nothing at all.
 */

let recorded: Promise<Buffer> | undefined;

/** A real TLS 1.3 ClientHello (node's tls.connect), as the first bytes a client writes. */
export function realClientHello(): Promise<Buffer> {
  recorded ??= new Promise((resolve, reject) => {
    const capture = net.createServer((s) => {
      s.once('data', (hello: Buffer) => {
        resolve(hello);
        s.destroy();
        capture.close();
      });
    });
    capture.listen(0, '127.0.0.1', () => {
      const client = tls.connect({ host: '127.0.0.1', port: (capture.address() as net.AddressInfo).port, rejectUnauthorized: false, minVersion: 'TLSv1.3', ALPNProtocols: ['h2', 'http/1.1'] });
      client.on('error', () => client.destroy());
    });
    capture.on('error', reject);
  });
  return recorded;
}

/** What became of an attacker's connection. */
export interface Attack {
  socket: net.Socket;
  /** Resolves once the server closed it (the test fails by its own timeout otherwise). */
  closed: Promise<void>;
  /** Bytes the server wrote before closing (a refused connection gets none). */
  received(): Buffer;
  isClosed(): boolean;
}

/** Connects, then writes `first` (nothing when empty) and never anything else. */
export function attack(port: number, first: Buffer | string = ''): Promise<Attack> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let isClosed = false;
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.on('data', (c: Buffer) => chunks.push(c));
    // A reset (RST) counts as closed too.
    socket.on('error', () => undefined);
    const closed = new Promise<void>((r) =>
      socket.once('close', () => {
        isClosed = true;
        r();
      }),
    );
    const outcome: Attack = { socket, closed, received: () => Buffer.concat(chunks), isClosed: () => isClosed };
    socket.once('connect', () => {
      if (first.length > 0) socket.write(first);
      resolve(outcome);
    });
    // Reset before the client saw 'connect' (a listener that resets at accept): closed as well.
    socket.once('error', (err: Error & { code?: string }) => (err.code === 'ECONNRESET' ? resolve(outcome) : reject(err)));
  });
}

/** Half of a real ClientHello: the handshake can never finish. */
export async function halfClientHello(port: number): Promise<Attack> {
  const hello = await realClientHello();
  return attack(port, hello.subarray(0, Math.floor(hello.length / 2)));
}

/** A value of meshlet_listener_refused_connections_total (0 when absent). */
export async function refusedCount(registry: Registry, listener: string, reason: 'limit' | 'setup_timeout'): Promise<number> {
  const metric = registry.getSingleMetric('meshlet_listener_refused_connections_total');
  if (metric === undefined) return 0;
  const { values } = await metric.get();
  return values.find((v) => v.labels.listener === listener && v.labels.reason === reason)?.value ?? 0;
}

/** Polls until `cond` holds; fails naming `what` after a generous deadline (never a speed assertion). */
export async function eventually(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Closed within the generous deadline, else a failure that says which listener kept it. */
export async function expectClosed(a: Attack, what: string): Promise<void> {
  await eventually(() => a.isClosed(), `${what} to close the connection`);
}
