// detectProtocol on real loopback sockets, with real clients (https, http/1.1, h2c prior
// knowledge, raw TCP), and the layer after it: node:http, node:http2, or a byte splice to a
// real HTTPS server (the app's own TLS, passed on untouched). Each test checks that the bytes
// read for detection are read again by that next layer, and that detection leaves no listener.
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as https from 'node:https';
import * as net from 'node:net';
import type * as tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { detectProtocol, DETECT_MAX_BYTES, HTTP1_LINE_BOUND, type Detected } from '../../../../src/data-plane/proxy/detect/first-bytes.ts';
import { clientHelloMessage, inRecords, serverNameExt } from '../../../unit/proxy/detect/tls-bytes.ts';

const FIXTURES = join(import.meta.dirname, '../../../fixtures/generated');
const LONG_WAIT = 10_000; // a wait no test should reach: decisions on bytes must be immediate

type NextLayer = (socket: net.Socket, detected: Detected) => void;

interface Detection {
  detected: Detected;
  elapsedMs: number;
  /** Listener counts on the socket before detection and after it settled. */
  listenersBefore: Record<string, number>;
  listenersAfter: Record<string, number>;
}

const EVENTS = ['readable', 'data', 'end', 'error', 'close'] as const;
const counts = (s: net.Socket) => Object.fromEntries(EVENTS.map((e) => [e, s.listenerCount(e)]));

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  vi.restoreAllMocks();
});

/** A loopback listener that runs detection on every connection, then hands the socket to `next`. */
async function detectingServer(waitMs: number, next: NextLayer) {
  const results: Detection[] = [];
  const waiters: Array<(d: Detection) => void> = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    const listenersBefore = counts(socket);
    const start = performance.now();
    void detectProtocol(socket, waitMs).then((detected) => {
      const d: Detection = { detected, elapsedMs: performance.now() - start, listenersBefore, listenersAfter: counts(socket) };
      results.push(d);
      waiters.shift()?.(d);
      socket.on('error', () => {});
      next(socket, detected);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    /** The next detection result (in order of completion). */
    next: (): Promise<Detection> => (results.length > 0 ? Promise.resolve(results.shift()!) : new Promise((resolve) => waiters.push(resolve))),
  };
}

/** The next layer for HTTP: node's own servers, fed the socket the way they accept one. */
function httpLayers() {
  const h1 = http.createServer((req, res) => res.end(`h1 ${req.method} ${req.url} ${req.headers.host}`));
  const h2 = http2.createServer((req, res) => res.end(`h2 ${req.method} ${req.url}`));
  h2.on('sessionError', () => {});
  cleanups.push(() => {
    h1.closeAllConnections();
  });
  return (socket: net.Socket, d: Detected): void => {
    if (d.protocol === 'http1') h1.emit('connection', socket);
    else if (d.protocol === 'h2') h2.emit('connection', socket);
    else socket.destroy();
  };
}

function rawClient(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
    cleanups.push(() => void s.destroy());
  });
}

function collect(socket: net.Socket): { text: () => string; ended: Promise<void> } {
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  const ended = new Promise<void>((resolve) => {
    socket.once('end', resolve);
    socket.once('close', () => resolve());
  });
  return { text: () => Buffer.concat(chunks).toString('latin1'), ended };
}

function expectNoListenerLeft(d: Detection): void {
  expect(d.listenersAfter).toEqual(d.listenersBefore);
}

describe('detectProtocol on real sockets', () => {
  it('a real HTTPS client: TLS with its SNI, and its handshake passes untouched to the real server behind', async () => {
    // The app's own TLS: the next layer is a byte splice to an https.Server, not a TLS terminator.
    const app = https.createServer(
      { cert: readFileSync(join(FIXTURES, 'good-leaf.pem')), key: readFileSync(join(FIXTURES, 'good-leaf.key')), ALPNProtocols: ['http/1.1'] },
      (req, res) => res.end(`tls app saw ${req.headers.host}`),
    );
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => {
      app.closeAllConnections();
      return new Promise<void>((resolve) => app.close(() => resolve()));
    });
    const appPort = (app.address() as net.AddressInfo).port;
    const server = await detectingServer(LONG_WAIT, (socket) => {
      const upstream = net.connect(appPort, '127.0.0.1');
      upstream.on('error', () => socket.destroy());
      socket.pipe(upstream).pipe(socket);
    });

    // https.request passes TLS options through to tls.connect; its type lists only some of them.
    const options: https.RequestOptions & tls.ConnectionOptions = {
      host: '127.0.0.1',
      port: server.port,
      path: '/',
      servername: 'Orders.Shop.example',
      headers: { host: 'orders.shop.example' },
      rejectUnauthorized: false,
      ALPNProtocols: ['http/1.1'],
      agent: false,
    };
    const body = await new Promise<string>((resolve, reject) => {
      const req = https.get(
        options,
        (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve(text));
        },
      );
      req.on('error', reject);
    });
    const d = await server.next();
    expect(d.detected).toEqual({ protocol: 'tls', sni: 'orders.shop.example', alpn: ['http/1.1'], reason: 'bytes' });
    expect(d.elapsedMs).toBeLessThan(LONG_WAIT / 2);
    expect(body).toBe('tls app saw orders.shop.example');
    expectNoListenerLeft(d);
  });

  it('a real HTTP/1.1 client: http1, and node:http then serves the request from the first byte', async () => {
    const server = await detectingServer(LONG_WAIT, httpLayers());
    const body = await new Promise<string>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port: server.port, path: '/orders?id=42', headers: { host: 'orders' }, agent: false }, (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve(text));
        })
        .on('error', reject);
    });
    const d = await server.next();
    expect(d.detected).toEqual({ protocol: 'http1', reason: 'bytes' });
    expect(body).toBe('h1 GET /orders?id=42 orders');
    expectNoListenerLeft(d);
  });

  it('a real h2c prior-knowledge client (node:http2 to http://): h2, and node:http2 then serves it', async () => {
    const server = await detectingServer(LONG_WAIT, httpLayers());
    const session = http2.connect(`http://127.0.0.1:${server.port}`);
    cleanups.push(() => void session.destroy());
    session.on('error', () => {});
    const body = await new Promise<string>((resolve, reject) => {
      const req = session.request({ ':path': '/grpc.health.v1.Health/Check' });
      let text = '';
      req.on('data', (c: Buffer) => (text += c.toString()));
      req.on('end', () => resolve(text));
      req.on('error', reject);
      req.end();
    });
    const d = await server.next();
    expect(d.detected).toEqual({ protocol: 'h2', reason: 'bytes' });
    expect(body).toBe('h2 GET /grpc.health.v1.Health/Check');
    expectNoListenerLeft(d);
  });

  it('a client that sends nothing (server speaks first): opaque on the deadline, and the server can then greet it', async () => {
    const waitMs = 150;
    const server = await detectingServer(waitMs, (socket) => {
      socket.write('220 smtp.example ESMTP ready\r\n');
      socket.on('data', (c: Buffer) => socket.write(`250 got ${c.toString('latin1').trim()}\r\n`));
    });
    const client = await rawClient(server.port);
    const seen = collect(client);
    const d = await server.next();
    expect(d.detected).toEqual({ protocol: 'opaque', reason: 'timeout' });
    expect(d.elapsedMs).toBeGreaterThanOrEqual(waitMs - 5);
    expect(d.elapsedMs).toBeLessThan(waitMs + 2_000);
    await vi.waitFor(() => expect(seen.text()).toBe('220 smtp.example ESMTP ready\r\n'));
    client.write('EHLO client\r\n');
    await vi.waitFor(() => expect(seen.text()).toContain('250 got EHLO client'));
    expectNoListenerLeft(d);
  });

  it('a client that sends binary: opaque at once (reason bytes), and the next layer reads every byte again', async () => {
    const server = await detectingServer(LONG_WAIT, (socket) => socket.pipe(socket));
    const client = await rawClient(server.port);
    const seen = collect(client);
    const payload = Buffer.from([0x00, 0x00, 0x00, 0x08, 0x04, 0xd2, 0x16, 0x2f]); // a Postgres SSLRequest
    client.write(payload);
    const d = await server.next();
    expect(d.detected).toEqual({ protocol: 'opaque', reason: 'bytes' });
    expect(d.elapsedMs).toBeLessThan(LONG_WAIT / 2);
    await vi.waitFor(() => expect(Buffer.from(seen.text(), 'latin1')).toEqual(payload));
    expectNoListenerLeft(d);
  });

  it('a client that closes without a byte: opaque, reason closed, long before the deadline', async () => {
    const server = await detectingServer(LONG_WAIT, (socket) => socket.end());
    const client = await rawClient(server.port);
    client.end();
    const d = await server.next();
    expect(d.detected).toEqual({ protocol: 'opaque', reason: 'closed' });
    expect(d.elapsedMs).toBeLessThan(LONG_WAIT / 2);
    expectNoListenerLeft(d);
  });

  it('a client that sends an undecided prefix and half-closes: closed, and its bytes are still given back', async () => {
    const received: string[] = [];
    let ended!: () => void;
    const nextLayerEnded = new Promise<void>((resolve) => (ended = resolve));
    const server = await detectingServer(LONG_WAIT, (socket) => {
      // Had detection let 'end' go by, this layer would never see it: fail fast, not by timeout.
      if (socket.readableEnded) ended();
      socket.on('data', (c: Buffer) => received.push(c.toString('latin1')));
      socket.on('end', () => {
        ended();
        socket.end();
      });
    });
    const client = await rawClient(server.port);
    client.end('GET /unfinish');
    const d = await server.next();
    expect(d.detected).toEqual({ protocol: 'opaque', reason: 'closed' });
    await nextLayerEnded;
    expect(received.join('')).toBe('GET /unfinish');
    expectNoListenerLeft(d);
  });

  it('a client that resets the connection: closed, and nothing is left behind', async () => {
    const server = await detectingServer(LONG_WAIT, () => {});
    const client = await rawClient(server.port);
    client.write('GET /');
    await new Promise((resolve) => setTimeout(resolve, 50));
    client.resetAndDestroy();
    const d = await server.next();
    expect(d.detected).toMatchObject({ reason: 'closed' });
    expectNoListenerLeft(d);
  });

  it('a ClientHello dribbled in pieces: one timer for the whole detection, TLS with its SNI, and every byte given back in order', async () => {
    const waitMs = 4_321; // recognizable among other timers
    const spy = vi.spyOn(globalThis, 'setTimeout');
    const server = await detectingServer(waitMs, (socket) => socket.pipe(socket));
    const hello = inRecords(clientHelloMessage({ extensions: [[0, serverNameExt([[0, 'slow.example']])]] }), 9);
    const client = await rawClient(server.port);
    client.setNoDelay(true);
    const seen = collect(client);
    for (let i = 0; i < hello.length; i += 16) {
      client.write(hello.subarray(i, i + 16));
      await new Promise((resolve) => setImmediate(resolve));
    }
    const d = await server.next();
    expect(d.detected).toEqual({ protocol: 'tls', sni: 'slow.example', alpn: [], reason: 'bytes' });
    expect(spy.mock.calls.filter(([, ms]) => ms === waitMs)).toHaveLength(1);
    await vi.waitFor(() => expect(seen.text().length).toBe(hello.length));
    expect(Buffer.from(seen.text(), 'latin1')).toEqual(hello);
    expectNoListenerLeft(d);
  });

  it('a half-sent ClientHello at the deadline: TLS without SNI, reason timeout, bytes given back', async () => {
    const server = await detectingServer(150, (socket) => socket.pipe(socket));
    const hello = inRecords(clientHelloMessage({ extensions: [[0, serverNameExt([[0, 'stall.example']])]] }));
    const client = await rawClient(server.port);
    const seen = collect(client);
    client.write(hello.subarray(0, 20));
    const d = await server.next();
    expect(d.detected).toEqual({ protocol: 'tls', sni: null, alpn: [], reason: 'timeout' });
    await vi.waitFor(() => expect(Buffer.from(seen.text(), 'latin1')).toEqual(hello.subarray(0, 20)));
  });

  it(`an endless request line: HTTP/1 after ${HTTP1_LINE_BOUND} bytes, not a wait for the whole line`, async () => {
    let served = '';
    const h1 = http.createServer({ maxHeaderSize: 64 * 1024 }, (req, res) => {
      served = req.url!.slice(0, 20);
      res.end('ok');
    });
    cleanups.push(() => void h1.closeAllConnections());
    const server = await detectingServer(LONG_WAIT, (socket) => h1.emit('connection', socket));
    const client = await rawClient(server.port);
    const seen = collect(client);
    const target = `/${'a'.repeat(HTTP1_LINE_BOUND + 4096)}`;
    client.write(`GET ${target.slice(0, HTTP1_LINE_BOUND + 100)}`);
    const d = await server.next();
    expect(d.detected).toEqual({ protocol: 'http1', reason: 'bytes' });
    client.write(`${target.slice(HTTP1_LINE_BOUND + 100)} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`);
    await seen.ended;
    expect(seen.text()).toMatch(/^HTTP\/1\.1 200/);
    expect(served).toBe(target.slice(0, 20));
  });

  it(`a ClientHello larger than ${DETECT_MAX_BYTES} bytes: TLS without SNI once the window is full, every byte given back`, async () => {
    const server = await detectingServer(LONG_WAIT, (socket) => socket.pipe(socket));
    const message = clientHelloMessage({ extensions: [[0, serverNameExt([[0, 'huge.example']])], [21, Buffer.alloc(3000)]] });
    const bytes = inRecords(message, 1); // 1-byte records: ~18.5 KB
    const client = await rawClient(server.port);
    const seen = collect(client);
    client.write(bytes);
    const d = await server.next();
    expect(d.detected).toEqual({ protocol: 'tls', sni: null, alpn: [], reason: 'bytes' });
    await vi.waitFor(() => expect(seen.text().length).toBe(bytes.length));
    expect(Buffer.from(seen.text(), 'latin1')).toEqual(bytes);
  });

  it('refuses a wait that is not a positive number of milliseconds', async () => {
    const socket = new net.Socket();
    await expect(detectProtocol(socket, 0)).rejects.toThrow(RangeError);
    await expect(detectProtocol(socket, Number.NaN)).rejects.toThrow(/positive number of milliseconds/);
    socket.destroy();
  });
});
