import * as http from 'node:http';
import type * as net from 'node:net';
import { PassThrough } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DISCARD_LIMIT_BYTES, Http1Pool, type InFlightSlot } from '../../../src/data-plane/proxy/upstream/http1-pool.ts';
import { resolveProxySettings, type ProxySettingsInput } from '../../../src/data-plane/proxy/config.ts';
import { ConnectionRegistry } from '../../../src/data-plane/proxy/connection-registry.ts';
import { ProxyError } from '../../../src/data-plane/proxy/http/errors.ts';
import { closeServer, listen, waitFor } from '../proxy/support/mesh-fixture.ts';

/**
 * The pool under overload and cancellation (issue 11 items 5 and 6), against a real node:http
 * app that counts connections and request heads and answers only when told:
 *   - the wait queue is bounded (503 MESHLET_UPSTREAM_BUSY at once) and timed
 *     (503 MESHLET_UPSTREAM_QUEUE_TIMEOUT); a waiter whose client left never reaches the app;
 *   - an exchange cancelled after its complete request went out keeps its connection (the
 *     response is read and dropped), one cancelled mid-body or with a large response does not;
 *   - the in-flight slot of an exchange is released exactly once, when the app is done with it.
 */
let app: http.Server;
let port: number;
let appConnections = 0;
const heads: string[] = [];
const held: http.ServerResponse[] = [];
const pools: Http1Pool[] = [];

beforeAll(async () => {
  app = http.createServer((req, res) => {
    heads.push(`${req.method} ${req.url}`);
    req.resume();
    if (req.url === '/now') {
      req.on('end', () => res.end('now'));
      return;
    }
    held.push(res);
  });
  app.keepAliveTimeout = 60_000;
  app.on('connection', (s: net.Socket) => {
    appConnections++;
    s.on('error', () => {});
  });
  port = await listen(app);
});
afterEach(async () => {
  for (const res of held.splice(0)) res.destroy();
  await Promise.all(pools.splice(0).map((p) => p.destroy()));
});
afterAll(() => closeServer(app));

function pool(settings: ProxySettingsInput): Http1Pool {
  const p = new Http1Pool({ label: 'app port test', host: '127.0.0.1', port }, { settings: resolveProxySettings(settings), registry: new ConnectionRegistry(), direction: 'inbound' });
  pools.push(p);
  return p;
}

/** A slot that counts its releases. */
class CountingSlot implements InFlightSlot {
  released = 0;
  release(): void {
    this.released++;
  }
}

interface Outcome {
  status: number;
  body: string;
  error: (Error & { code?: string }) | null;
}

/** One exchange; `abort` lets the test cancel it as a leaving client would. */
function exchange(p: Http1Pool, path: string, opts: { slot?: InFlightSlot; body?: PassThrough } = {}): { done: Promise<Outcome>; abort(): void } {
  let abort: ((err?: Error) => void) | null = null;
  let gone = false;
  const done = new Promise<Outcome>((resolve) => {
    const out: Outcome = { status: 0, body: '', error: null };
    p.dispatch(
      { method: opts.body ? 'POST' : 'GET', path, headers: ['host', 'app'], body: opts.body ?? null },
      {
        onConnect(a: (err?: Error) => void) {
          abort = a;
          if (gone) a();
        },
        onHeaders(status: number) {
          out.status = status;
          return true;
        },
        onData(chunk: Buffer) {
          out.body += chunk.toString();
          return true;
        },
        onComplete() {
          resolve(out);
        },
        onError(err: Error) {
          out.error = err;
          resolve(out);
        },
      },
      opts.slot ?? null,
    );
  });
  return {
    done,
    abort() {
      gone = true;
      abort?.();
    },
  };
}

describe('the wait queue is bounded and timed (fail fast)', () => {
  it('beyond maxPendingPerUpstream: 503 MESHLET_UPSTREAM_BUSY at once, the app never sees it', async () => {
    const p = pool({ limits: { maxConnectionsPerUpstream: 2, maxPendingPerUpstream: 2 }, timeouts: { queueWaitMs: 60_000 } });
    const before = heads.length;
    const running = [exchange(p, '/a'), exchange(p, '/b')];
    await waitFor(() => heads.length === before + 2, 'two requests at the app');
    const waiting = [exchange(p, '/c'), exchange(p, '/d')];
    expect(p.pending).toBe(2);
    const slot = new CountingSlot();
    const refused = await exchange(p, '/e', { slot }).done;
    expect(refused.error).toBeInstanceOf(ProxyError);
    expect(refused.error?.code).toBe('MESHLET_UPSTREAM_BUSY');
    expect(refused.error?.message).toBe('app port test: all 2 connections are busy and 2 requests already wait (limits.maxConnectionsPerUpstream, limits.maxPendingPerUpstream)');
    expect(slot.released).toBe(1);
    // The waiters are served, in order, as the running exchanges end.
    for (const res of held.splice(0)) res.end('done');
    await Promise.all(running.map((r) => r.done));
    await waitFor(() => heads.length === before + 4, 'the waiters at the app');
    expect(heads.slice(before)).toEqual(['GET /a', 'GET /b', 'GET /c', 'GET /d']);
    for (const res of held.splice(0)) res.end('done');
    expect((await Promise.all(waiting.map((w) => w.done))).map((o) => o.body)).toEqual(['done', 'done']);
  });

  it('a request that waited timeouts.queueWaitMs: 503 MESHLET_UPSTREAM_QUEUE_TIMEOUT, the app never sees it', async () => {
    const p = pool({ limits: { maxConnectionsPerUpstream: 1 }, timeouts: { queueWaitMs: 100 } });
    const before = heads.length;
    exchange(p, '/busy');
    await waitFor(() => heads.length === before + 1, 'the first request at the app');
    const slot = new CountingSlot();
    const late = await exchange(p, '/late', { slot }).done;
    expect(late.error?.code).toBe('MESHLET_UPSTREAM_QUEUE_TIMEOUT');
    expect(late.error?.message).toBe('app port test: no connection became free within 100 ms (all 1 busy; timeouts.queueWaitMs)');
    expect(slot.released).toBe(1);
    expect(p.pending).toBe(0);
    expect(heads.slice(before)).toEqual(['GET /busy']);
  });

  it('a waiter whose client left is dropped when a connection frees up: nothing reaches the app', async () => {
    const p = pool({ limits: { maxConnectionsPerUpstream: 1 }, timeouts: { queueWaitMs: 60_000 } });
    const before = heads.length;
    const first = exchange(p, '/first');
    await waitFor(() => heads.length === before + 1, 'the first request at the app');
    const slot = new CountingSlot();
    const left = exchange(p, '/left', { slot });
    const next = exchange(p, '/now');
    left.abort();
    held.shift()!.end('first');
    expect((await first.done).body).toBe('first');
    expect((await left.done).error?.message).toBe('request aborted');
    expect(slot.released).toBe(1);
    expect((await next.done).body).toBe('now');
    expect(heads.slice(before)).toEqual(['GET /first', 'GET /now']);
  });
});

describe('a cancelled exchange costs the app as little as it can', () => {
  it('cancelled after its complete request went out: the response is drained and the connection reused', async () => {
    const p = pool({});
    const connectionsBefore = appConnections;
    const before = heads.length;
    const slot = new CountingSlot();
    const cancelled = exchange(p, '/slow', { slot });
    await waitFor(() => heads.length === before + 1, 'the request at the app');
    cancelled.abort();
    expect((await cancelled.done).error?.message).toBe('request aborted');
    // The app is still working for it: the caller's slot is held until the app is done.
    expect(slot.released).toBe(0);
    held.shift()!.end('an answer nobody reads');
    await waitFor(() => slot.released === 1, 'the drained exchange to release its slot');
    expect((await exchange(p, '/now').done).body).toBe('now');
    expect(appConnections - connectionsBefore).toBe(1);
    expect(slot.released).toBe(1);
  });

  it(`a drained response larger than ${DISCARD_LIMIT_BYTES} bytes costs its connection instead`, async () => {
    const p = pool({});
    const connectionsBefore = appConnections;
    const before = heads.length;
    const slot = new CountingSlot();
    const cancelled = exchange(p, '/big', { slot });
    await waitFor(() => heads.length === before + 1, 'the request at the app');
    cancelled.abort();
    held.shift()!.end(Buffer.alloc(DISCARD_LIMIT_BYTES * 2, 120));
    await waitFor(() => slot.released === 1, 'the exchange to end');
    expect((await exchange(p, '/now').done).body).toBe('now');
    expect(appConnections - connectionsBefore).toBe(2);
  });

  it('cancelled with half its body sent: the connection is closed (a cut body must never look complete)', async () => {
    const p = pool({});
    const connectionsBefore = appConnections;
    const before = heads.length;
    const body = new PassThrough();
    const slot = new CountingSlot();
    const cancelled = exchange(p, '/upload', { body, slot });
    body.write('half of it');
    await waitFor(() => heads.length === before + 1, 'the request at the app');
    const appSide = held.shift()!;
    const cut = new Promise<boolean>((resolve) => appSide.req.once('close', () => resolve(!appSide.req.complete)));
    cancelled.abort();
    expect(await cut).toBe(true);
    expect(slot.released).toBe(1);
    expect((await exchange(p, '/now').done).body).toBe('now');
    expect(appConnections - connectionsBefore).toBe(2);
  });
});

describe('requests on which nothing moves (timeouts.streamIdleMs)', () => {
  it('an app that never answers: MESHLET_UPSTREAM_TIMEOUT, connection closed, slot released', async () => {
    const p = pool({ timeouts: { streamIdleMs: 200 } });
    const slot = new CountingSlot();
    const out = await exchange(p, '/never', { slot }).done;
    expect(out.error?.code).toBe('MESHLET_UPSTREAM_TIMEOUT');
    expect(out.error?.message).toBe('no byte from app port test for 200 ms (timeouts.streamIdleMs)');
    expect(slot.released).toBe(1);
  });

  it('a request body that stops arriving: MESHLET_REQUEST_TIMEOUT', async () => {
    const p = pool({ timeouts: { streamIdleMs: 200 } });
    const body = new PassThrough();
    body.write('a start');
    const out = await exchange(p, '/stalled', { body }).done;
    expect(out.error?.code).toBe('MESHLET_REQUEST_TIMEOUT');
    expect(out.error?.message).toBe('no byte from or to the client for 200 ms while forwarding to app port test (timeouts.streamIdleMs)');
  });
});

describe('overload settings (src/data-plane/proxy/config.ts)', () => {
  it('defaults: documented values; the per-caller share is half of maxConnectionsPerUpstream unless given', () => {
    const d = resolveProxySettings();
    expect(d.timeouts).toMatchObject({ queueWaitMs: 1_000, streamIdleMs: 300_000 });
    expect(d.limits).toMatchObject({ maxConnectionsPerUpstream: 256, maxPendingPerUpstream: 1024, maxInFlightPerCaller: 128, h2MaxConcurrentStreams: 250, h2MaxPrematureResets: 100 });
    expect(resolveProxySettings({ limits: { maxConnectionsPerUpstream: 9 } }).limits.maxInFlightPerCaller).toBe(5);
    expect(resolveProxySettings({ limits: { maxConnectionsPerUpstream: 1 } }).limits.maxInFlightPerCaller).toBe(1);
    expect(resolveProxySettings({ limits: { maxConnectionsPerUpstream: 8, maxInFlightPerCaller: 8 } }).limits.maxInFlightPerCaller).toBe(8);
  });

  it('refuses non-positive or fractional values, every one at once', () => {
    expect(() => resolveProxySettings({ timeouts: { queueWaitMs: 0, streamIdleMs: 1.5 }, limits: { maxPendingPerUpstream: -1, h2MaxPrematureResets: 0 } })).toThrow(
      'invalid proxy settings: timeouts.queueWaitMs must be a positive integer, got 0; timeouts.streamIdleMs must be a positive integer, got 1.5; limits.maxPendingPerUpstream must be a positive integer, got -1; limits.h2MaxPrematureResets must be a positive integer, got 0',
    );
  });
});
