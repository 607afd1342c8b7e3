import * as net from 'node:net';
import { BenchError } from '../lib/bench-error.ts';
import { BENCH_PATH } from '../lib/bench-policy.ts';
import { openIdleConnection, type IdleConnection } from '../lib/idle-connection.ts';
import { dialerFor } from '../lib/mtls-dial.ts';
import { openFilesLimit, rssBytes, socketCount, type ProxyProcess } from '../lib/process-usage.ts';
import type { RunOptions } from '../lib/run-options.ts';
import type { ConnectTarget, HttpTarget } from '../lib/topology.ts';

/**
 * What an idle keep-alive connection costs a proxy in memory. Two ways in, for meshlet and for
 * the nginx pair alike:
 *
 * - `outbound`: N app connections to the client side (plain HTTP, as an app's pooled client
 *   connections to its sidecar), each makes one request and then idles. The outbound holds N
 *   connections; the inbound holds only the outbound's pooled mTLS connections (about as many
 *   as requests were in flight at once: the figure of the inbound here is not per connection).
 * - `inbound-mtls`: N mTLS connections straight to the server side's listener with the client
 *   pod's SVID (as the new-connection scenario dials it), each one request then idle: the
 *   per-connection cost of the inbound's mTLS server, TLS state and HTTP parser included.
 *
 * VmRSS of both proxy processes before and after, once the connections have sat idle for a
 * settle time; GC is not forced (a sidecar in a pod is not either), so a collection in the
 * window makes the figure smaller, never larger. Every connection must still be open when the
 * figures are read (the sidecar's idle timeout is 60 s, nginx's 120 s); one closed early fails
 * the scenario rather than report a per-connection figure of fewer connections.
 */

export type IdlePath = 'outbound' | 'inbound-mtls';

export interface IdleProcessFigures {
  rssBeforeBytes: number;
  rssAfterBytes: number;
  socketsBefore: number;
  socketsAfter: number;
  /** (after − before) per 1,000 of the connections the client opened (MiB). */
  mibPer1k: number;
}

export interface IdleMeasurement {
  target: 'meshlet' | 'nginx';
  path: IdlePath;
  connections: number;
  /** Seconds the N connections took to open (one request each, `openConcurrency` at a time). */
  openSeconds: number;
  /** By role: "outbound", "inbound". */
  processes: Record<string, IdleProcessFigures>;
}

export interface IdleConnectionsResult {
  connections: number;
  settleSeconds: number;
  openConcurrency: number;
  method: string;
  measurements: IdleMeasurement[];
}

/** Connections opening (handshake + request) at once: the inbound's pool to the app stays as small as under the other scenarios' load. */
const OPEN_CONCURRENCY = 16;
/** The sidecar's default per-listener connection caps (MESHLET_MAX_INBOUND/OUTBOUND_CONNECTIONS) are 1,024, pooled peer connections included. */
export const MAX_IDLE_CONNECTIONS = 1000;

const MIB = 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The client holds N sockets, each proxy N plus its pools and listeners: say so before a confusing EMFILE. */
function checkFileLimits(n: number, procs: readonly ProxyProcess[]): void {
  const need = { self: n + 512, proxy: n + 1024 };
  const self = openFilesLimit('self');
  if (self < need.self) throw new BenchError('BENCH_FD_LIMIT', `--idle-connections ${n} needs an open-files limit of at least ${need.self} for the bench itself (ulimit -n is ${self}): raise it (ulimit -n ${need.proxy}) in the shell that runs npm run bench, or lower --idle-connections`);
  for (const p of procs) {
    const limit = openFilesLimit(p.pid);
    if (limit < need.proxy) throw new BenchError('BENCH_FD_LIMIT', `--idle-connections ${n}: the ${p.role} proxy (pid ${p.pid}) may open only ${limit} files (ulimit -n), fewer than the ${need.proxy} it needs; raise ulimit -n in the shell that runs npm run bench (the proxies inherit it), or lower --idle-connections`);
  }
}

async function openAll(n: number, open: () => Promise<IdleConnection>, what: string): Promise<IdleConnection[]> {
  const conns: IdleConnection[] = [];
  let next = 0;
  let failure: BenchError | null = null;
  const opener = async () => {
    while (next < n && !failure) {
      const i = next++;
      try {
        conns.push(await open());
      } catch (err) {
        failure ??= new BenchError('BENCH_IDLE_CONNECTION_FAILED', `${what}: connection ${i + 1} of ${n} failed: ${(err as Error).message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: OPEN_CONCURRENCY }, opener));
  if (failure) {
    for (const c of conns) c.socket.destroy();
    throw failure;
  }
  return conns;
}

async function measure(target: 'meshlet' | 'nginx', path: IdlePath, procs: readonly ProxyProcess[], open: () => Promise<IdleConnection>, n: number, settleSeconds: number, o: RunOptions): Promise<IdleMeasurement> {
  const what = `idle-connections ${target} ${path}`;
  // The last scenario's garbage and closing connections settle first, so "before" is idle too.
  await sleep(settleSeconds * 1000);
  const before = Object.fromEntries(procs.map((p) => [p.role, { rss: rssBytes(p.pid), sockets: socketCount(p.pid) }]));
  const started = performance.now();
  const conns = await openAll(n, open, what);
  const openSeconds = (performance.now() - started) / 1000;
  try {
    await sleep(settleSeconds * 1000);
    const closed = conns.filter((c) => !c.open()).length;
    if (closed > 0) throw new BenchError('BENCH_IDLE_CONNECTION_FAILED', `${what}: ${closed} of ${n} idle connections were closed by the proxy within ${settleSeconds} s of their request (an idle timeout or a connection cap): the per-connection figure would be of fewer connections`);
    const processes: Record<string, IdleProcessFigures> = {};
    for (const p of procs) {
      const rssAfterBytes = rssBytes(p.pid);
      const b = before[p.role]!;
      processes[p.role] = { rssBeforeBytes: b.rss, rssAfterBytes, socketsBefore: b.sockets, socketsAfter: socketCount(p.pid), mibPer1k: ((rssAfterBytes - b.rss) / MIB / n) * 1000 };
    }
    o.log(`  ${what}: ${n} connections opened in ${openSeconds.toFixed(1)} s, idle ${settleSeconds} s; ${Object.entries(processes).map(([role, f]) => `${role} ${((f.rssAfterBytes - f.rssBeforeBytes) / MIB).toFixed(1)} MiB (${f.mibPer1k.toFixed(1)} MiB/1k), sockets ${f.socketsBefore} -> ${f.socketsAfter}`).join('; ')}`);
    return { target, path, connections: n, openSeconds, processes };
  } finally {
    for (const c of conns) c.socket.destroy();
  }
}

export async function idleConnections(http: readonly HttpTarget[], connect: readonly ConnectTarget[], o: RunOptions, n: number, settleSeconds: number): Promise<IdleConnectionsResult> {
  o.log(`idle-connections: ${n} keep-alive connections held idle through each proxy pair's client side, then ${n} mTLS connections to its server side`);
  const measurements: IdleMeasurement[] = [];
  for (const name of ['meshlet', 'nginx'] as const) {
    const h = http.find((t) => t.name === name);
    const c = connect.find((t) => t.name === name);
    if (!h || !c) continue;
    checkFileLimits(n, h.procs);
    const plain = () => openIdleConnection(net.connect({ host: h.endpoint.host, port: h.endpoint.port, noDelay: true }), h.endpoint.path, h.endpoint.hostHeader);
    measurements.push(await measure(name, 'outbound', h.procs, plain, n, settleSeconds, o));
    const dial = dialerFor(c);
    const mtls = () => openIdleConnection(dial(), BENCH_PATH, c.hostHeader);
    measurements.push(await measure(name, 'inbound-mtls', h.procs, mtls, n, settleSeconds, o));
  }
  return {
    connections: n,
    settleSeconds,
    openConcurrency: OPEN_CONCURRENCY,
    method: `outbound: ${n} plain keep-alive HTTP/1.1 connections to the client-side proxy (meshlet's outbound port / nginx's), Host upstream:80, one GET (1 KB) each, then idle; inbound-mtls: ${n} TLS 1.3 connections with the client pod's SVID straight to the server-side listener (meshlet's inbound HTTP port / nginx's), one GET each, then idle; ${OPEN_CONCURRENCY} opening at a time; VmRSS of each proxy process read ${settleSeconds} s before opening and ${settleSeconds} s after the last connection's request, GC not forced; every connection still open when read`,
    measurements,
  };
}
