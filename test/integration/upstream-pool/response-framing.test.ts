import * as net from 'node:net';
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Http1Pool } from '../../../src/data-plane/proxy/upstream/http1-pool.ts';
import { ClosedBeforeResponse } from '../../../src/data-plane/proxy/upstream/upstream.ts';
import { resolveProxySettings } from '../../../src/data-plane/proxy/config.ts';
import { ConnectionRegistry } from '../../../src/data-plane/proxy/connection-registry.ts';
import { closeServer, listen } from '../proxy/support/mesh-fixture.ts';

/**
 * The lean pool's response parser against a raw "app" that answers each request head with
 * scripted bytes, over real sockets. Each case is a framing rule of RFC 9112 the proxy relies
 * on to never mistake where one response ends (response splitting / desync).
 */

interface Outcome {
  heads: { status: number; headers: Record<string, string> }[];
  body: string;
  trailers: string[] | null;
  error: (Error & { code?: string }) | null;
}

let script: (requestHead: string, socket: net.Socket) => void = () => {};
let connections = 0;
const requestsSeen: string[] = [];
/** Every byte any connection sent, in arrival order. */
let rawSeen = '';
let server: net.Server;
let port: number;
const pools: Http1Pool[] = [];

beforeAll(async () => {
  server = net.createServer((socket) => {
    connections++;
    let pending = '';
    socket.on('error', () => {});
    socket.on('data', (d: Buffer) => {
      pending += d.toString('latin1');
      rawSeen += d.toString('latin1');
      let end: number;
      while ((end = pending.indexOf('\r\n\r\n')) !== -1) {
        const head = pending.slice(0, end);
        pending = pending.slice(end + 4);
        requestsSeen.push(head);
        // Only request heads get an answer (a chunked body's last-chunk also ends in CRLFCRLF).
        if (/^[A-Z]+ \//.test(head)) script(head, socket);
      }
    });
  });
  port = await listen(server);
});
afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.destroy()));
});
afterAll(() => closeServer(server));

function pool(): Http1Pool {
  const p = new Http1Pool({ label: 'scripted app', host: '127.0.0.1', port }, {
    settings: resolveProxySettings({ limits: { maxHeaderBytes: 1024 } }),
    registry: new ConnectionRegistry(),
    direction: 'inbound',
  });
  pools.push(p);
  return p;
}

function send(p: Http1Pool, opts: { method?: string; body?: Readable | null; headers?: string[] } = {}): Promise<Outcome> {
  return new Promise((resolve) => {
    const out: Outcome = { heads: [], body: '', trailers: null, error: null };
    p.dispatch({ method: opts.method ?? 'GET', path: '/', headers: opts.headers ?? ['host', 'app'], body: opts.body ?? null }, {
      onConnect() {},
      onHeaders(status: number, raw: Buffer[]) {
        const headers: Record<string, string> = {};
        for (let i = 0; i < raw.length; i += 2) headers[raw[i]!.toString().toLowerCase()] = raw[i + 1]!.toString();
        out.heads.push({ status, headers });
        return true;
      },
      onData(chunk: Buffer) {
        out.body += chunk.toString();
        return true;
      },
      onComplete(trailers: string[] | null) {
        out.trailers = trailers;
        resolve(out);
      },
      onError(err: Error) {
        out.error = err;
        resolve(out);
      },
    });
  });
}

describe('the upstream pool reads responses strictly', () => {
  it('reads a chunked body with chunk extensions and trailers, and reuses the connection', async () => {
    script = (_h, s) => s.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;name=value;x="q"\r\nhello\r\n6 ; ext\r\n world\r\n0\r\nx-checksum: abc\r\nx-other: 1\r\n\r\n');
    const p = pool();
    const before = connections;
    const first = await send(p);
    expect(first.error).toBeNull();
    expect(first.body).toBe('hello world');
    expect(first.trailers).toEqual(['x-checksum', 'abc', 'x-other', '1']);
    const second = await send(p);
    expect(second.body).toBe('hello world');
    expect(connections).toBe(before + 1);
  });

  it('passes 1xx heads before the final one and reads the final body', async () => {
    script = (_h, s) => s.write('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 4\r\n\r\ndone');
    const got = await send(pool());
    expect(got.heads.map((h) => h.status)).toEqual([100, 103, 201]);
    expect(got.heads[1]!.headers.link).toBe('</a.css>; rel=preload');
    expect(got.body).toBe('done');
  });

  it('reads a body without length until the connection closes, and never reuses that connection', async () => {
    script = (_h, s) => {
      s.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil ');
      setImmediate(() => s.end('the end'));
    };
    const p = pool();
    const before = connections;
    expect((await send(p)).body).toBe('until the end');
    expect((await send(p)).body).toBe('until the end');
    expect(connections).toBe(before + 2);
  });

  it('reads a response delivered one byte per segment', async () => {
    const bytes = 'HTTP/1.1 200 OK\r\ncontent-length: 3\r\nx-a: b\r\n\r\nabc';
    script = (_h, s) => {
      s.setNoDelay(true);
      let i = 0;
      const next = (): void => {
        if (i < bytes.length) s.write(bytes[i++]!, () => setImmediate(next));
      };
      next();
    };
    const got = await send(pool());
    expect(got.error).toBeNull();
    expect(got.heads[0]!.headers['x-a']).toBe('b');
    expect(got.body).toBe('abc');
  });

  it('reads no body after HEAD, 204 and 304, and keeps the connection', async () => {
    const p = pool();
    const before = connections;
    script = (_h, s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n');
    expect(await send(p, { method: 'HEAD' })).toMatchObject({ body: '', error: null });
    script = (_h, s) => s.write('HTTP/1.1 204 No Content\r\n\r\n');
    expect(await send(p)).toMatchObject({ body: '', error: null });
    script = (_h, s) => s.write('HTTP/1.1 304 Not Modified\r\netag: "x"\r\n\r\n');
    expect(await send(p)).toMatchObject({ body: '', error: null });
    expect(connections).toBe(before + 1);
  });

  it('frames a streamed request body as chunked, and a sized one with its Content-Length', async () => {
    script = (_h, s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
    rawSeen = '';
    await send(pool(), { method: 'POST', body: Readable.from([Buffer.from('ab'), Buffer.from('cd')]) });
    expect(rawSeen).toBe('POST / HTTP/1.1\r\nhost: app\r\ntransfer-encoding: chunked\r\n\r\n2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n');
    rawSeen = '';
    await send(pool(), { method: 'PUT', body: Readable.from([Buffer.from('xyz')]), headers: ['host', 'app', 'content-length', '3'] });
    expect(rawSeen).toBe('PUT / HTTP/1.1\r\nhost: app\r\ncontent-length: 3\r\n\r\nxyz');
    rawSeen = '';
    await send(pool(), { method: 'POST' });
    expect(rawSeen).toBe('POST / HTTP/1.1\r\nhost: app\r\ncontent-length: 0\r\n\r\n');
  });

  const refused: [string, string][] = [
    ['an oversized head', `HTTP/1.1 200 OK\r\nx-big: ${'a'.repeat(5000)}\r\ncontent-length: 0\r\n\r\n`],
    ['obsolete line folding', 'HTTP/1.1 200 OK\r\nx-a: one\r\n two\r\ncontent-length: 0\r\n\r\n'],
    ['Content-Length with Transfer-Encoding', 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['two different Content-Length fields', 'HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab'],
    ['a Content-Length that is not a number', 'HTTP/1.1 200 OK\r\ncontent-length: 1e3\r\n\r\n'],
    ['a bare LF ending a header line', 'HTTP/1.1 200 OK\nx-a: b\r\ncontent-length: 0\r\n\r\n'],
    ['a bare CR inside a value', 'HTTP/1.1 200 OK\r\nx-a: b\rc\r\ncontent-length: 0\r\n\r\n'],
    ['whitespace before the colon', 'HTTP/1.1 200 OK\r\nx-a : b\r\ncontent-length: 0\r\n\r\n'],
    ['a NUL in a value', 'HTTP/1.1 200 OK\r\nx-a: b\u0000c\r\ncontent-length: 0\r\n\r\n'],
    ['a malformed status line', 'HTTP/1.1 2x0 Nope\r\ncontent-length: 0\r\n\r\n'],
    ['an HTTP/2 status line', 'HTTP/2 200\r\ncontent-length: 0\r\n\r\n'],
    ['a bad chunk size', 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n'],
    ['chunk data longer than its size', 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n'],
    ['a 101 nobody asked for', 'HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n'],
  ];
  for (const [what, bytes] of refused) {
    it(`refuses ${what}: MESHLET_UPSTREAM_BAD_RESPONSE, connection dropped`, async () => {
      script = (_h, s) => s.write(bytes);
      const p = pool();
      const before = connections;
      const got = await send(p);
      expect(got.error?.code).toBe('MESHLET_UPSTREAM_BAD_RESPONSE');
      script = (_h, s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
      expect((await send(p)).body).toBe('ok');
      expect(connections).toBe(before + 2);
    });
  }

  it('accepts identical duplicate Content-Length fields', async () => {
    script = (_h, s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 2\r\n\r\nok');
    expect(await send(pool())).toMatchObject({ body: 'ok', error: null });
  });

  it('drops a connection that sends bytes after a complete response (never read as the next response)', async () => {
    script = (_h, s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nforged');
    const p = pool();
    const before = connections;
    expect((await send(p)).body).toBe('ok');
    script = (_h, s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nreal');
    expect((await send(p)).body).toBe('real');
    expect(connections).toBe(before + 2);
  });

  it('a connection closed before any response byte is MESHLET_UPSTREAM_RESET as a ClosedBeforeResponse (what forward-request retries once); mid-body a plain MESHLET_UPSTREAM_RESET', async () => {
    script = (_h, s) => s.destroy();
    const before = (await send(pool())).error;
    expect(before?.code).toBe('MESHLET_UPSTREAM_RESET');
    expect(before).toBeInstanceOf(ClosedBeforeResponse);
    script = (_h, s) => s.end('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc');
    const got = await send(pool());
    expect(got.body).toBe('abc');
    expect(got.error?.code).toBe('MESHLET_UPSTREAM_RESET');
    expect(got.error).not.toBeInstanceOf(ClosedBeforeResponse);
  });

  it('honours backpressure (onData false, resume later) and keeps the connection usable after it', async () => {
    const big = 'z'.repeat(1024 * 1024);
    script = (_h, s) => s.write(`HTTP/1.1 200 OK\r\ncontent-length: ${big.length}\r\n\r\n${big}`);
    const p = pool();
    const before = connections;
    let pauses = 0;
    const got = await new Promise<number>((resolve, reject) => {
      let n = 0;
      let resume: () => void = () => {};
      p.dispatch({ method: 'GET', path: '/', headers: ['host', 'app'], body: null }, {
        onConnect() {},
        onHeaders: (_s: number, _r: Buffer[], r: () => void) => {
          resume = r;
          return true;
        },
        onData(chunk: Buffer) {
          n += chunk.length;
          pauses++;
          // Always "slow": the pool must stop reading until resume(), as after a client's 'drain'.
          setImmediate(resume);
          return false;
        },
        onComplete: () => resolve(n),
        onError: reject,
      });
    });
    expect(pauses).toBeGreaterThan(1);
    expect(got).toBe(big.length);
    script = (_h, s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
    expect((await send(p)).body).toBe('ok');
    expect(connections).toBe(before + 1);
  });

  it('a late abort from a finished exchange does not cut the next exchange on the reused connection', async () => {
    script = (_h, s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
    const p = pool();
    const before = connections;
    let lateAbort: (() => void) | null = null;
    await new Promise<void>((resolve, reject) => {
      p.dispatch({ method: 'GET', path: '/', headers: ['host', 'app'], body: null }, {
        onConnect(abort: () => void) {
          lateAbort = abort;
        },
        onHeaders: () => true,
        onData: () => true,
        onComplete: () => resolve(),
        onError: reject,
      });
    });
    script = (_h, s) => setTimeout(() => s.write('HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nnext'), 20);
    const next = send(p);
    lateAbort!();
    expect(await next).toMatchObject({ body: 'next', error: null });
    expect(connections).toBe(before + 1);
  });

  it('delivers an early answer sent before the request body ended, then never reuses that connection', async () => {
    script = (_h, s) => s.write('HTTP/1.1 413 Content Too Large\r\ncontent-length: 3\r\n\r\nbig');
    const p = pool();
    const before = connections;
    // A body that never ends on its own: the answer must not wait for it.
    const endless = new Readable({ read() {} });
    endless.push(Buffer.alloc(1024, 1));
    const got = await send(p, { method: 'POST', body: endless });
    expect(got).toMatchObject({ body: 'big', error: null });
    expect(got.heads[0]!.status).toBe(413);
    endless.destroy();
    script = (_h, s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
    expect((await send(p)).body).toBe('ok');
    expect(connections).toBe(before + 2);
  });

  it('a refused connection is MESHLET_UPSTREAM_CONNECT_FAILED', async () => {
    const dead = net.createServer();
    const deadPort = await listen(dead);
    await closeServer(dead);
    const p = new Http1Pool({ label: 'dead app', host: '127.0.0.1', port: deadPort }, { settings: resolveProxySettings(), registry: new ConnectionRegistry(), direction: 'inbound' });
    pools.push(p);
    expect((await send(p)).error?.code).toBe('MESHLET_UPSTREAM_CONNECT_FAILED');
  });

  it('queues requests beyond maxConnectionsPerUpstream and serves them as connections free up', async () => {
    script = (_h, s) => setTimeout(() => s.write('HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nk'), 5);
    const p = new Http1Pool({ label: 'scripted app', host: '127.0.0.1', port }, {
      settings: resolveProxySettings({ limits: { maxConnectionsPerUpstream: 2 } }),
      registry: new ConnectionRegistry(),
      direction: 'inbound',
    });
    pools.push(p);
    const before = connections;
    const all = await Promise.all(Array.from({ length: 10 }, () => send(p)));
    expect(all.every((o) => o.body === 'k' && o.error === null)).toBe(true);
    expect(connections - before).toBe(2);
  });
});
