// Issue 15, "HTTP/2 between sidecars only where it measurably pays": would carrying the
// sidecar-to-sidecar hop of HTTP/1.1 traffic over ONE multiplexed HTTP/2 mTLS session pay, next
// to today's HTTP/1.1 keep-alive pool? The lever is the hop itself: the app still speaks HTTP/1.1
// to its sidecar, so the outbound would translate h1 -> h2 and the inbound h2 -> h1 (the inbound
// half exists: h2/forward-stream-to-http1.ts, used today for HTTP/2 callers of an HTTP/1.1 app).
// What it could buy: fewer connections (one TLS session and its buffers per peer instead of one
// per concurrent request), no head-of-line wait for a free connection, HPACK-compressed heads.
// What it costs: node:http2's per-stream machinery (an Http2Stream duplex, header objects, a
// dozen listeners, per leg) against Http1Pool's one-string head and strict parser.
//
// Measured here, on loopback, over real mesh mTLS (MeshTls with SVIDs from the bench's CA,
// bench/lib/bench-pki.ts: TLS 1.3, client certificate required and verified on both ends), each
// side in its own process so its CPU is its own (process.cpuUsage of each), both started with
// the injector's Node flags and MALLOC_ARENA_MAX (heap-settings.ts), as the sidecars run:
//   server process = the inbound's HTTP step: createMtlsServer (ALPN h2, http/1.1) feeding
//     HttpServing.serveHttp1 / serveH2 (the very code of inbound-proxy.ts), answering itself
//     with a 1 KB body after the header work the inbound does for an HTTP/1.1 app (h1:
//     forwardHeaders + forwardResponseHeaders; h2: readStreamRequest + http1ForwardHeaders +
//     h2HeadersFromFlat, a waitForTrailers response ended with empty trailers, as
//     forward-stream-to-http1.ts does); the app leg behind it is the same for both and left out.
//   client process = the outbound's upstream leg: the app's HTTP/1.1 head through forwardHeaders,
//     then A: meshlet's Http1Pool (mTLS, ALPN http/1.1, up to 16 keep-alive connections), or
//     B: H2SessionPool (mTLS, ALPN h2) — 1, 2 or 4 sessions, streams round-robin — with the head
//     translated to an HTTP/2 header object and the response head flattened back for the app
//     (the h1 <-> h2 translation a real implementation adds on the outbound, counted here).
// Requests: GET with 6 headers (host, user-agent, accept, accept-encoding, traceparent,
// x-request-id; the last two differ on every request, as real ones do, so HPACK cannot index
// them), 1 KB response; and POST with a 1 KB body (+ content-type, content-length).
// For each variant, alternated over rounds (order rotated each round; medians and min–max):
//   - a fixed rate (open loop: arrivals on a schedule, at most 16 in flight, a late arrival
//     waits for a slot): CPU µs per request of each process, latency p50/p99 from dispatch to
//     the response's last byte, late arrivals, and major (mark-compact) GCs of each process;
//   - saturation: 16 in flight, closed loop: requests/s and CPU µs per request of each process;
//   - idle memory, fresh processes each round: N h1 connections (each carried one request) vs
//     N h2 sessions, and 1 h2 session after a burst of N concurrent streams (what replaces the N
//     connections an h1 pool keeps after such a burst): VmRSS and JS heap growth after gc().
// Run: node bench/micro/h2-between-sidecars.ts [--rounds 3] [--rate 2000] [--seconds 5] [--sat-seconds 2]
//        [--warmup 1] [--idle 200]        (defaults: ~3 minutes, inside run.ts's 300 s bound)
// @bench-quick-args --rounds 1 --rate 500 --seconds 0.5 --sat-seconds 0.3 --warmup 0.2 --idle 20
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import type * as http from 'node:http';
import type * as http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { constants as perfConstants, PerformanceObserver } from 'node:perf_hooks';
import { PassThrough, Readable } from 'node:stream';
import type * as tls from 'node:tls';
import { parseArgs } from 'node:util';
import { BENCH_IDS, writeBenchPki } from '../lib/bench-pki.ts';
import { IpcChild } from '../lib/ipc-child.ts';
import { LatencyHistogram, type LatencySummary } from '../lib/latency-histogram.ts';
import { median } from '../lib/median.ts';
import { socketCount } from '../lib/process-usage.ts';
import { ConnectionGuard } from '../../src/common/net/connection-guard.ts';
import { StaticSvidSource } from '../../src/data-plane/identity/sources/static.ts';
import { MeshTls } from '../../src/data-plane/tls/mesh-tls.ts';
import { resolveProxySettings } from '../../src/data-plane/proxy/config.ts';
import { ConnectionRegistry } from '../../src/data-plane/proxy/connection-registry.ts';
import { H2SessionPool } from '../../src/data-plane/proxy/h2/h2-session-pool.ts';
import { h2HeadersFromFlat, http1ForwardHeaders, readStreamRequest } from '../../src/data-plane/proxy/h2/stream-headers.ts';
import { forwardHeaders, forwardResponseHeaders, PEER_IDENTITY_HEADER } from '../../src/data-plane/proxy/http/headers.ts';
import { HttpServing } from '../../src/data-plane/proxy/http/http-serving.ts';
import { createMtlsServer } from '../../src/data-plane/proxy/inbound/mtls-server.ts';
import { INBOUND_ALPN } from '../../src/data-plane/proxy/inbound/inbound-proxy.ts';
import { meshTarget } from '../../src/data-plane/proxy/outbound/mesh-target.ts';
import { Http1Pool } from '../../src/data-plane/proxy/upstream/http1-pool.ts';
import type { ProxyError } from '../../src/data-plane/proxy/http/errors.ts';
import type { UpstreamHandler } from '../../src/data-plane/proxy/upstream/upstream.ts';

const HELP = `node bench/micro/h2-between-sidecars.ts [options]

Sidecar-to-sidecar hop over HTTP/1.1 (meshlet's Http1Pool, 16 keep-alive mTLS connections)
against HTTP/2 (H2SessionPool: 1, 2 or 4 mTLS sessions, 16 streams in flight), client and
server in separate processes (CPU of each), inbound HTTP step = HttpServing as inbound-proxy.ts
builds it. See the header comment of this file for what each figure is.

  --rounds N        alternated rounds of every variant (default 3; medians and min–max)
  --rate R          fixed arrival rate, req/s (default 2000; at most 16 in flight)
  --seconds S       measured seconds at the fixed rate (default 5)
  --sat-seconds S   measured seconds at saturation, 16 in flight (default 2)
  --warmup S        warm-up seconds before each fixed-rate run (default 1)
  --idle N          idle connections / sessions for the memory figures (default 200, at most 240)
  --help            this text

The last line of output is one JSON object with the medians.`;

const CONCURRENCY = 16;
const BODY = Buffer.alloc(1024, 120);
const PATH = '/api/orders/1234?expand=lines';
const AUTHORITY = 'orders.shop.svc.cluster.local:80';
/** The app's response head as Http1Pool hands it to the inbound (raw latin1 buffers), from an nginx-like app. */
const APP_RESPONSE_RAW = ['Server', 'nginx/1.22.1', 'Date', 'Thu, 04 Dec 2026 00:19:42 GMT', 'Content-Type', 'text/plain', 'Content-Length', '1024', 'Connection', 'keep-alive'].map((s) => Buffer.from(s, 'latin1'));
const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);
const noop = (): void => {};

type Proto = 'h1' | 'h2';
interface Variant {
  name: string;
  proto: Proto;
  sessions: number;
  post: boolean;
}
const VARIANTS: readonly Variant[] = [
  { name: 'GET  HTTP/1.1 pool, <=16 conns', proto: 'h1', sessions: 0, post: false },
  { name: 'GET  HTTP/2, 1 session', proto: 'h2', sessions: 1, post: false },
  { name: 'GET  HTTP/2, 2 sessions', proto: 'h2', sessions: 2, post: false },
  { name: 'GET  HTTP/2, 4 sessions', proto: 'h2', sessions: 4, post: false },
  { name: 'POST HTTP/1.1 pool, <=16 conns', proto: 'h1', sessions: 0, post: true },
  { name: 'POST HTTP/2, 1 session', proto: 'h2', sessions: 1, post: true },
];
type IdleKind = 'h1-conns' | 'h2-sessions' | 'h2-burst';

// ---------------------------------------------------------------------------------------------
// IPC between the orchestrator and its two children: one request, one answer, by id.

interface Message {
  id: number;
  cmd: string;
  [k: string]: unknown;
}
interface MemoryReport {
  rss: number;
  heap: number;
}

function serveCommands(handle: (m: Message) => Promise<object>): void {
  process.on('message', (m: Message) => {
    handle(m).then(
      (r) => process.send!({ id: m.id, ...r }),
      (err: unknown) => process.send!({ id: m.id, error: (err as Error)?.stack ?? String(err) }),
    );
  });
  // The orchestrator went away: nothing more to do.
  process.on('disconnect', () => process.exit(0));
  watchMajorGc();
}

/** Major (mark-compact) GCs of this process so far, and their pause time: h2's extra garbage shows up here, and in p99. */
const majorGc = { count: 0, ms: 0 };
function watchMajorGc(): void {
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if ((e as { detail?: { kind?: number } }).detail?.kind === perfConstants.NODE_PERFORMANCE_GC_MAJOR) {
        majorGc.count++;
        majorGc.ms += e.duration;
      }
    }
  }).observe({ entryTypes: ['gc'] });
}

function memoryNow(): MemoryReport {
  gc();
  gc();
  const m = process.memoryUsage();
  return { rss: m.rss, heap: m.heapUsed + m.external };
}


// ---------------------------------------------------------------------------------------------
// Server process: the inbound sidecar's mTLS + HTTP step, answering itself.

async function runServer(pkiDir: string): Promise<void> {
  const source = await StaticSvidSource.fromPemFiles({ svid: join(pkiDir, 'server.crt'), key: join(pkiDir, 'server.key'), bundle: join(pkiDir, 'bundle.crt') });
  const meshTls = new MeshTls(source);
  const settings = resolveProxySettings();
  const registry = new ConnectionRegistry();
  let sink = 0;
  const identity = { name: PEER_IDENTITY_HEADER, value: BENCH_IDS.client };

  // HTTP/1.1: the head as forward-request.ts forwards it to an HTTP/1.1 app, the app's response head as it goes back.
  const respondH1 = (res: http.ServerResponse): void => {
    res.writeHead(200, forwardResponseHeaders(APP_RESPONSE_RAW));
    res.end(BODY);
  };
  const serving = new HttpServing(settings, {
    request(req, res) {
      const head = forwardHeaders(req.rawHeaders, PEER_IDENTITY_HEADER);
      head.headers.push(identity.name, identity.value);
      sink += head.headers.length;
      if (req.method === 'GET') {
        req.resume();
        respondH1(res);
      } else {
        req.on('data', (c: Buffer) => (sink += c.length));
        req.once('end', () => respondH1(res));
      }
    },
    upgrade: (_req, socket) => socket.destroy(),
    refused: noop,
  });
  // HTTP/2: as request-pipeline.ts + forward-stream-to-http1.ts handle a stream for an HTTP/1.1 app.
  const respondH2 = (stream: http2.ServerHttp2Stream): void => {
    stream.respond(h2HeadersFromFlat(200, forwardResponseHeaders(APP_RESPONSE_RAW)), { waitForTrailers: true });
    stream.write(BODY);
    stream.once('wantTrailers', () => stream.sendTrailers({}));
    stream.end();
  };
  const onStream = (stream: http2.ServerHttp2Stream, _headers: http2.IncomingHttpHeaders, _flags: number, raw: string[]): void => {
    const head = readStreamRequest(raw, PEER_IDENTITY_HEADER);
    sink += http1ForwardHeaders(head, identity).length;
    if (stream.endAfterHeaders) {
      respondH2(stream);
    } else {
      const body = stream.pipe(new PassThrough());
      body.on('data', (c: Buffer) => (sink += c.length));
      body.once('end', () => respondH2(stream));
    }
  };
  const guard = new ConnectionGuard({ listener: 'inbound', maxConnections: 4096 });
  const { server } = createMtlsServer({
    tls: meshTls,
    settings,
    guard,
    alpn: INBOUND_ALPN,
    onVerified(socket: tls.TLSSocket, peer: string) {
      const conn = registry.track('inbound', 'accepted', socket);
      conn.peerIdentity = peer;
      conn.tlsVersion = socket.getProtocol() ?? null;
      if (socket.alpnProtocol === 'h2') serving.serveH2(socket, onStream);
      else serving.serveHttp1(socket);
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  serveCommands(async (m) => {
    if (m.cmd === 'cpu') {
      const c = process.cpuUsage();
      return { cpuUs: c.user + c.system, majorGcs: majorGc.count, majorGcMs: majorGc.ms, sink };
    }
    if (m.cmd === 'memory') return memoryNow();
    throw new Error(`unknown command ${m.cmd}`);
  });
  process.send!({ id: 0, port: (server.address() as { port: number }).port });
}

// ---------------------------------------------------------------------------------------------
// Client process: the outbound sidecar's upstream leg toward the peer sidecar.

type Done = (err: Error | null) => void;

/** The app's request head as node:http's rawHeaders has it: 6 fields, traceparent and x-request-id new on every request. */
const IDS = Array.from({ length: 4096 }, () => ({ traceparent: `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`, requestId: randomBytes(16).toString('hex') }));
function appHead(i: number, post: boolean): string[] {
  const id = IDS[i & 4095]!;
  const raw = ['Host', AUTHORITY, 'User-Agent', 'shop-frontend/2.3 (node)', 'Accept', 'application/json', 'Accept-Encoding', 'gzip, deflate', 'traceparent', id.traceparent, 'x-request-id', id.requestId];
  if (post) raw.push('Content-Type', 'application/json', 'Content-Length', '1024');
  return raw;
}

/** A request body as the outbound hands it on (a readable of the app's bytes). */
function bodyStream(): Readable {
  const r = new Readable({ read: noop });
  r.push(BODY);
  r.push(null);
  return r;
}

/** What an outbound h1 -> h2 translation does: pseudo-headers from the request line and Host, names lower-cased, repeats joined. */
function h2RequestHead(method: string, path: string, fields: readonly string[], host: string): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = { ':method': method, ':path': path, ':scheme': 'https', ':authority': host };
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i]!.toLowerCase();
    if (name === 'host') continue;
    const prev = out[name];
    out[name] = prev === undefined ? fields[i + 1]! : `${String(prev)}, ${fields[i + 1]!}`;
  }
  return out;
}

/** ... and back: an HTTP/2 response head as the flat list res.writeHead() takes for the app. */
function http1ResponseHead(h: http2.IncomingHttpHeaders): string[] {
  const out: string[] = [];
  for (const name of Object.keys(h)) {
    if (name.charCodeAt(0) === 58 /* ':' */) continue;
    const v = h[name];
    if (Array.isArray(v)) for (const one of v) out.push(name, one);
    else if (v !== undefined) out.push(name, v);
  }
  return out;
}

class H1Exchange implements UpstreamHandler {
  readonly #done: Done;
  head: string[] | null = null;
  constructor(done: Done) {
    this.#done = done;
  }
  onConnect(): void {}
  onHeaders(status: number, rawHeaders: Buffer[]): boolean {
    if (status >= 200) this.head = forwardResponseHeaders(rawHeaders);
    return true;
  }
  onData(): boolean {
    return true;
  }
  onComplete(): void {
    this.#done(this.head === null ? new Error('no response head') : null);
  }
  onError(err: ProxyError): void {
    this.#done(err);
  }
}

async function runClient(pkiDir: string, port: number): Promise<void> {
  const source = await StaticSvidSource.fromPemFiles({ svid: join(pkiDir, 'client.crt'), key: join(pkiDir, 'client.key'), bundle: join(pkiDir, 'bundle.crt') });
  const meshTls = new MeshTls(source);
  const registry = new ConnectionRegistry();
  const where = { label: `peer sidecar for ${AUTHORITY} (${BENCH_IDS.server})`, host: '127.0.0.1', port };
  const pin = { expected: { spiffeId: BENCH_IDS.server } };
  const h1Target = meshTarget(meshTls, where, pin, 'http/1.1', noop);
  const h2Target = meshTarget(meshTls, where, pin, 'h2', noop);
  const hop = (maxConnections = 256) => ({ settings: resolveProxySettings({ limits: { maxConnectionsPerUpstream: maxConnections } }), registry, direction: 'outbound' as const });
  let sink = 0;

  const sendH1 = (pool: Http1Pool, i: number, post: boolean, done: Done): void => {
    const head = forwardHeaders(appHead(i, post), PEER_IDENTITY_HEADER);
    pool.dispatch({ method: post ? 'POST' : 'GET', path: PATH, headers: head.headers, body: post ? bodyStream() : null }, new H1Exchange(done));
  };
  const onStreamData = (c: Buffer): void => {
    sink += c.length;
  };
  const streamOn = (pool: H2SessionPool, session: http2.ClientHttp2Session, h2head: http2.OutgoingHttpHeaders, post: boolean, done: Done): void => {
    let up: http2.ClientHttp2Stream;
    try {
      up = session.request(h2head, { endStream: !post });
    } catch (err) {
      done(err as Error);
      return;
    }
    const tracked = pool.connectionOf(session);
    if (tracked !== undefined) tracked.requests++;
    let head: string[] | null = null;
    let finished = false;
    const finish = (err: Error | null): void => {
      if (finished) return;
      finished = true;
      done(err);
    };
    up.once('response', (h: http2.IncomingHttpHeaders) => {
      head = http1ResponseHead(h);
    });
    up.on('data', onStreamData);
    up.once('end', () => finish(head === null ? new Error('no response head') : null));
    up.once('error', finish);
    if (post) bodyStream().pipe(up);
  };
  const sendH2 = (pools: readonly H2SessionPool[], i: number, post: boolean, done: Done): void => {
    const head = forwardHeaders(appHead(i, post), PEER_IDENTITY_HEADER);
    const h2head = h2RequestHead(post ? 'POST' : 'GET', PATH, head.headers, head.host);
    const pool = pools[i % pools.length]!;
    const got = pool.session();
    if (got instanceof Promise) got.then((s) => streamOn(pool, s, h2head, post, done), (err: unknown) => done(err as Error));
    else streamOn(pool, got, h2head, post, done);
  };

  // Kept across runs, as a sidecar keeps its pools: one HTTP/1.1 pool, and HTTP/2 session sets by size.
  const h1Pool = new Http1Pool(h1Target, hop());
  const h2Pools = new Map<number, H2SessionPool[]>();
  const sender = (v: Variant): ((i: number, done: Done) => void) => {
    if (v.proto === 'h1') return (i, done) => sendH1(h1Pool, i, v.post, done);
    let pools = h2Pools.get(v.sessions);
    if (pools === undefined) h2Pools.set(v.sessions, (pools = Array.from({ length: v.sessions }, () => new H2SessionPool(h2Target, hop()))));
    const set = pools;
    return (i, done) => sendH2(set, i, v.post, done);
  };

  let counter = 0;
  /** Open loop at `rate` (at most 16 in flight; a late arrival waits for a slot) or, rate 0, closed loop with 16 in flight. */
  const load = (v: Variant, rate: number, seconds: number): Promise<{ requests: number; errors: number; firstError: string | null; late: number; elapsedS: number; cpuUs: number; majorGcs: number; majorGcMs: number; latency: LatencySummary }> =>
    new Promise((resolve) => {
      const send = sender(v);
      const histogram = new LatencyHistogram();
      const t0 = process.hrtime.bigint();
      const cpu0 = process.cpuUsage();
      const gc0 = { ...majorGc };
      const endAt = t0 + BigInt(Math.round(seconds * 1e9));
      const total = rate > 0 ? Math.max(1, Math.round(rate * seconds)) : Infinity;
      const intervalNs = rate > 0 ? 1e9 / rate : 0;
      let issued = 0;
      let inFlight = 0;
      let backlog = 0;
      let late = 0;
      let completed = 0;
      let errors = 0;
      let firstError: string | null = null;
      let stopped = false;
      const finish = (): void => {
        const cpu = process.cpuUsage(cpu0);
        const latency = histogram.summary();
        histogram.destroy();
        resolve({ requests: completed - errors, errors, firstError, late, elapsedS: Number(process.hrtime.bigint() - t0) / 1e9, cpuUs: cpu.user + cpu.system, majorGcs: majorGc.count - gc0.count, majorGcMs: majorGc.ms - gc0.ms, latency });
      };
      const launch = (): void => {
        inFlight++;
        const started = process.hrtime.bigint();
        send(counter++, (err) => {
          inFlight--;
          completed++;
          if (err === null) histogram.recordNanos(process.hrtime.bigint() - started);
          else {
            errors++;
            firstError ??= err.message;
          }
          if (rate > 0) {
            if (backlog > 0) {
              backlog--;
              launch();
            } else if (completed === total) finish();
          } else if (!stopped && process.hrtime.bigint() < endAt) launch();
          else {
            stopped = true;
            if (inFlight === 0) finish();
          }
        });
      };
      if (rate === 0) {
        for (let i = 0; i < CONCURRENCY; i++) launch();
        return;
      }
      const tick = (): void => {
        const since = Number(process.hrtime.bigint() - t0);
        const due = Math.min(total, Math.floor(since / intervalNs) + 1);
        while (issued < due) {
          issued++;
          if (inFlight < CONCURRENCY) launch();
          else {
            backlog++;
            late++;
          }
        }
        if (issued < total) setTimeout(tick, Math.max(0, (issued * intervalNs - since) / 1e6));
      };
      tick();
    });

  // Idle memory: fresh processes per measurement (the orchestrator starts them), one warm connection first.
  let idleH1: Http1Pool | null = null;
  let idleH2: H2SessionPool[] = [];
  const idleRequests = (count: number, send: (i: number, done: Done) => void): Promise<void> =>
    new Promise((resolve, reject) => {
      let left = count;
      for (let i = 0; i < count; i++) {
        send(i, (err) => {
          if (err !== null) reject(err);
          else if (--left === 0) resolve();
        });
      }
    });
  const sequential = async (count: number, send: (i: number, done: Done) => void): Promise<void> => {
    for (let i = 0; i < count; i++) await idleRequests(1, (_j, done) => send(i, done));
  };

  serveCommands(async (m) => {
    if (m.cmd === 'run') {
      const v = VARIANTS.find((x) => x.name === m.variant)!;
      const r = await load(v, m.rate as number, m.seconds as number);
      return { ...r, connections: h1Pool.connections };
    }
    if (m.cmd === 'memory') return { ...memoryNow(), sink };
    if (m.cmd === 'idle-warm') {
      // One connection (or session) that carried a few requests: code loaded, TLS context and session cache warm.
      const n = m.n as number;
      if (m.kind === 'h1-conns') {
        idleH1 = new Http1Pool(h1Target, hop(n + 1));
        await sequential(20, (i, done) => sendH1(idleH1!, i, false, done));
      } else {
        idleH2 = [new H2SessionPool(h2Target, hop())];
        await sequential(20, (i, done) => sendH2(idleH2, i, false, done));
      }
      return {};
    }
    if (m.cmd === 'idle-open') {
      const n = m.n as number;
      const kind = m.kind as IdleKind;
      if (kind === 'h1-conns') {
        // n + 1 at once: the warm connection takes one, the pool opens n more; each then idles.
        await idleRequests(n + 1, (i, done) => sendH1(idleH1!, i, false, done));
        return { held: idleH1!.connections - 1 };
      }
      if (kind === 'h2-sessions') {
        const more = Array.from({ length: n }, () => new H2SessionPool(h2Target, hop()));
        await idleRequests(n, (i, done) => sendH2([more[i]!], i, false, done));
        idleH2.push(...more);
        return { held: more.length };
      }
      // h2-burst: n concurrent streams on the one warm session, then idle.
      await idleRequests(n, (i, done) => sendH2(idleH2, i, false, done));
      return { held: 0 };
    }
    throw new Error(`unknown command ${m.cmd}`);
  });
  process.send!({ id: 0 });
}

// ---------------------------------------------------------------------------------------------
// Orchestrator.

interface RunResult {
  requests: number;
  errors: number;
  firstError: string | null;
  late: number;
  elapsedS: number;
  cpuUs: number;
  majorGcs: number;
  majorGcMs: number;
  latency: LatencySummary;
  connections: number;
}
interface Sample {
  clientUs: number;
  serverUs: number;
  p50: number;
  p99: number;
  rps: number;
  late: number;
  connections: number;
  /** Major GCs during the run, client and server, and their pause time (ms). */
  clientGcs: number;
  serverGcs: number;
  gcMs: number;
}

function spread(xs: readonly number[], digits = 0): string {
  if (xs.length === 0) return '—';
  const f = (x: number) => x.toFixed(digits);
  const m = f(median(xs));
  return xs.length === 1 ? m : `${m} (${f(Math.min(...xs))}–${f(Math.max(...xs))})`;
}

async function orchestrate(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '3' },
      rate: { type: 'string', default: '2000' },
      seconds: { type: 'string', default: '5' },
      'sat-seconds': { type: 'string', default: '2' },
      warmup: { type: 'string', default: '1' },
      idle: { type: 'string', default: '200' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    return;
  }
  const rounds = Number(values.rounds);
  const rate = Number(values.rate);
  const seconds = Number(values.seconds);
  const satSeconds = Number(values['sat-seconds']);
  const warmup = Number(values.warmup);
  const idle = Number(values.idle);
  // The server's h2MaxConcurrentStreams is 250: a burst beyond it would queue in nghttp2.
  if (![rounds, rate, seconds, satSeconds, warmup, idle].every((x) => Number.isFinite(x) && x > 0) || !Number.isInteger(rounds) || !Number.isInteger(idle) || idle > 240) {
    process.stderr.write(`h2-between-sidecars: bad arguments (positive numbers; --rounds and --idle integers, --idle at most 240)\n\n${HELP}\n`);
    process.exitCode = 2;
    return;
  }
  const pkiDir = await mkdtemp(join(tmpdir(), 'meshlet-h2-bench-'));
  const children: IpcChild[] = [];
  const start = async (mode: string, args: string[]): Promise<{ child: IpcChild; hello: Record<string, unknown> }> => {
    const child = new IpcChild(import.meta.filename, mode, args, ['--expose-gc']);
    children.push(child);
    return { child, hello: await child.ready };
  };
  try {
    await writeBenchPki(pkiDir);
    const { child: server, hello } = await start('serve', [pkiDir]);
    const port = hello.port as number;
    const { child: client } = await start('client', [pkiDir, String(port)]);

    const runOnce = async (v: Variant, r: number, s: number): Promise<Sample> => {
      const before = await server.ask<{ cpuUs: number; majorGcs: number; majorGcMs: number }>('cpu');
      const res = await client.ask<RunResult>('run', { variant: v.name, rate: r, seconds: s });
      const after = await server.ask<{ cpuUs: number; majorGcs: number; majorGcMs: number }>('cpu');
      if (res.errors > 0) throw new Error(`${v.name}: ${res.errors} of ${res.requests + res.errors} requests failed; first: ${res.firstError}`);
      const n = Math.max(1, res.requests);
      return { clientUs: res.cpuUs / n, serverUs: (after.cpuUs - before.cpuUs) / n, p50: res.latency.p50Us, p99: res.latency.p99Us, rps: res.requests / res.elapsedS, late: res.late, connections: res.connections,
        clientGcs: res.majorGcs, serverGcs: after.majorGcs - before.majorGcs, gcMs: res.majorGcMs + after.majorGcMs - before.majorGcMs };
    };

    // Prime every variant once (JIT, pools and sessions opened), then alternate.
    for (const v of VARIANTS) await runOnce(v, 0, warmup);
    const atRate = new Map<string, Sample[]>(VARIANTS.map((v) => [v.name, []]));
    const atSat = new Map<string, Sample[]>(VARIANTS.map((v) => [v.name, []]));
    for (let round = 0; round < rounds; round++) {
      for (let k = 0; k < VARIANTS.length; k++) {
        const v = VARIANTS[(k + round) % VARIANTS.length]!;
        await runOnce(v, rate, warmup);
        atRate.get(v.name)!.push(await runOnce(v, rate, seconds));
        atSat.get(v.name)!.push(await runOnce(v, 0, satSeconds));
      }
    }
    server.stop();
    client.stop();

    // Idle memory: fresh processes for every measurement, kinds alternated.
    const kinds: readonly IdleKind[] = ['h1-conns', 'h2-sessions', 'h2-burst'];
    const mem = new Map<IdleKind, { clientRss: number[]; serverRss: number[]; clientHeap: number[]; serverHeap: number[] }>(kinds.map((k) => [k, { clientRss: [], serverRss: [], clientHeap: [], serverHeap: [] }]));
    for (let round = 0; round < rounds; round++) {
      for (let k = 0; k < kinds.length; k++) {
        const kind = kinds[(k + round) % kinds.length]!;
        const { child: s, hello: h } = await start('serve', [pkiDir]);
        const { child: c } = await start('client', [pkiDir, String(h.port as number)]);
        try {
          await c.ask('idle-warm', { kind, n: idle });
          const sockets0 = socketCount(s.proc.pid!);
          const [s0, c0] = [await s.ask<MemoryReport>('memory'), await c.ask<MemoryReport>('memory')];
          const opened = await c.ask<{ held: number }>('idle-open', { kind, n: idle });
          await new Promise((r) => setTimeout(r, 200));
          const held = socketCount(s.proc.pid!) - sockets0;
          const expected = kind === 'h2-burst' ? 0 : idle;
          if (held !== expected || opened.held !== expected) throw new Error(`${kind}: the server holds ${held} more connections, the client ${opened.held}, not ${expected}`);
          const [s1, c1] = [await s.ask<MemoryReport>('memory'), await c.ask<MemoryReport>('memory')];
          const per = kind === 'h2-burst' ? 1 : idle;
          const m = mem.get(kind)!;
          m.clientRss.push((c1.rss - c0.rss) / per / 1024);
          m.serverRss.push((s1.rss - s0.rss) / per / 1024);
          m.clientHeap.push((c1.heap - c0.heap) / per / 1024);
          m.serverHeap.push((s1.heap - s0.heap) / per / 1024);
        } finally {
          s.stop();
          c.stop();
        }
      }
    }

    // The tables.
    const w = Math.max(...VARIANTS.map((v) => v.name.length)) + 2;
    const out: string[] = [];
    out.push(`h2-between-sidecars: mesh mTLS on loopback, client and server in separate processes (injector's node flags), ${rounds} alternated round(s), medians (min–max)`);
    out.push(`requests: GET (6 headers, traceparent + x-request-id new each time) or POST with 1 KB body; 1 KB response; header work of the real inbound/outbound paths included`);
    out.push('');
    out.push(`at ${rate} req/s for ${seconds} s (open loop, <= ${CONCURRENCY} in flight)`);
    out.push(`${'variant'.padEnd(w)}${'client CPU µs/req'.padEnd(22)}${'server CPU µs/req'.padEnd(22)}${'p50 µs'.padEnd(18)}${'p99 µs'.padEnd(22)}${'late'.padEnd(6)}major GCs c/s (ms)`);
    for (const v of VARIANTS) {
      const s = atRate.get(v.name)!;
      const gcs = `${median(s.map((x) => x.clientGcs))}/${median(s.map((x) => x.serverGcs))} (${median(s.map((x) => x.gcMs)).toFixed(0)})`;
      out.push(`${v.name.padEnd(w)}${spread(s.map((x) => x.clientUs)).padEnd(22)}${spread(s.map((x) => x.serverUs)).padEnd(22)}${spread(s.map((x) => x.p50)).padEnd(18)}${spread(s.map((x) => x.p99)).padEnd(22)}${String(s.reduce((a, x) => a + x.late, 0)).padEnd(6)}${gcs}`);
    }
    out.push(`(late: arrivals that found all ${CONCURRENCY} in flight, summed over rounds, i.e. a stall of >= ${((CONCURRENCY / rate) * 1000).toFixed(0)} ms; major GCs: mark-compacts in the measured window, medians, pause ms summed over both)`);
    out.push('');
    out.push(`saturation: ${CONCURRENCY} in flight, closed loop, ${satSeconds} s`);
    out.push(`${'variant'.padEnd(w)}${'req/s'.padEnd(22)}${'client CPU µs/req'.padEnd(22)}${'server CPU µs/req'.padEnd(22)}p50 µs`);
    for (const v of VARIANTS) {
      const s = atSat.get(v.name)!;
      out.push(`${v.name.padEnd(w)}${spread(s.map((x) => x.rps)).padEnd(22)}${spread(s.map((x) => x.clientUs)).padEnd(22)}${spread(s.map((x) => x.serverUs)).padEnd(22)}${spread(s.map((x) => x.p50))}`);
    }
    const h1Conns = Math.max(...[...atSat.values()].flat().map((x) => x.connections));
    out.push(`(the HTTP/1.1 pool held ${h1Conns} connections to the peer at the end)`);
    out.push('');
    out.push(`idle memory after gc(), fresh processes each round, growth per connection / session (KiB): RSS, and JS heap (heapUsed + external)`);
    const label: Record<IdleKind, string> = {
      'h1-conns': `HTTP/1.1: ${idle} idle conns, per conn`,
      'h2-sessions': `HTTP/2: ${idle} idle sessions, per session`,
      'h2-burst': `HTTP/2: 1 session after ${idle} concurrent streams, total`,
    };
    const lw = Math.max(...Object.values(label).map((s) => s.length)) + 2;
    out.push(`${''.padEnd(lw)}${'client RSS'.padEnd(20)}${'server RSS'.padEnd(20)}${'client heap'.padEnd(20)}server heap`);
    for (const kind of kinds) {
      const m = mem.get(kind)!;
      out.push(`${label[kind].padEnd(lw)}${spread(m.clientRss, 1).padEnd(20)}${spread(m.serverRss, 1).padEnd(20)}${spread(m.clientHeap, 1).padEnd(20)}${spread(m.serverHeap, 1)}`);
    }
    process.stdout.write(`${out.join('\n')}\n`);

    const med = (xs: number[], d = 1) => Math.round(median(xs) * 10 ** d) / 10 ** d;
    const figures: Record<string, unknown> = { bench: 'h2-between-sidecars', rate, rounds, idle };
    for (const v of VARIANTS) {
      const r = atRate.get(v.name)!;
      const s = atSat.get(v.name)!;
      figures[v.name.replace(/\s+/g, ' ')] = {
        clientCpuUsPerReq: med(r.map((x) => x.clientUs)),
        serverCpuUsPerReq: med(r.map((x) => x.serverUs)),
        p50Us: med(r.map((x) => x.p50), 0),
        p99Us: med(r.map((x) => x.p99), 0),
        majorGcs: med(r.map((x) => x.clientGcs + x.serverGcs), 0),
        saturationRps: med(s.map((x) => x.rps), 0),
        saturationClientCpuUsPerReq: med(s.map((x) => x.clientUs)),
        saturationServerCpuUsPerReq: med(s.map((x) => x.serverUs)),
      };
    }
    for (const kind of kinds) {
      const m = mem.get(kind)!;
      figures[`idle ${kind} KiB`] = { clientRss: med(m.clientRss), serverRss: med(m.serverRss), clientHeap: med(m.clientHeap), serverHeap: med(m.serverHeap) };
    }
    process.stdout.write(`${JSON.stringify(figures)}\n`);
  } finally {
    for (const c of children) c.stop();
    await rm(pkiDir, { recursive: true, force: true });
  }
}

if (process.argv[2] === 'serve') await runServer(process.argv[3]!);
else if (process.argv[2] === 'client') await runClient(process.argv[3]!, Number(process.argv[4]));
else await orchestrate();
