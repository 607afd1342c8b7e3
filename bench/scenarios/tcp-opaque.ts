import * as net from 'node:net';
import { runClosedLoop } from '../lib/closed-loop.ts';
import { connectRoundTripClose, EchoConnection, runRoundTrips } from '../lib/echo-client.ts';
import { cpuPer1k, cpuSnapshot } from '../lib/process-usage.ts';
import { compareTargets, summarizeRuns, type RunSample, type ScenarioResult } from '../lib/figures.ts';
import { interleave } from '../lib/interleave.ts';
import { BenchError } from '../lib/bench-error.ts';
import type { RunOptions } from '../lib/run-options.ts';
import type { TcpTarget } from '../lib/topology.ts';

/**
 * Opaque TCP through one hop pair: the app dials a local port with plain TCP and its bytes come
 * back from a TCP echo app behind the server side. meshlet: the client pod's MESHLET_OUTBOUND_TCP
 * listener → mTLS (TLS 1.3, SVIDs, server identity pinned) → the server pod's `tcp` inbound port
 * (policy: caller + port, once per connection) → echo. nginx: the stream proxy pair with the same
 * certificates. direct: the echo itself.
 *
 * Two measurements:
 * - `tcp-opaque`: request/response round trips on persistent connections — `concurrency`
 *   connections opened (and each used once) before the clock starts, each carrying one 1 KB
 *   message at a time, closed loop; every round trip (write → the last echoed byte) is timed.
 * - `tcp-opaque-new-connections`: connect + one 1 KB round trip + close (FIN, and wait for the
 *   other side's), `concurrency` callers; each connection is a full mTLS handshake between the
 *   two proxies (neither resumes sessions) and one policy decision in meshlet.
 */

/** A plain TCP connection to the echo (through the proxy, or direct). */
function tcp(port: number): net.Socket {
  return net.connect({ host: '127.0.0.1', port, noDelay: true });
}

async function measureRoundTrips(t: TcpTarget, o: RunOptions, seconds: number): Promise<RunSample> {
  let conns: EchoConnection[];
  try {
    conns = await Promise.all(Array.from({ length: o.concurrency }, () => EchoConnection.open(tcp(t.port), 'connect')));
    // Untimed: the first bytes of a connection through a proxy pay for its peer connection (mTLS handshake).
    await Promise.all(conns.map((c) => c.roundTrip()));
  } catch (err) {
    throw new BenchError('BENCH_WARMUP_FAILED', `tcp-opaque ${t.name}: could not open ${o.concurrency} echo connections on port ${t.port}: ${(err as Error).message}`);
  }
  const before = cpuSnapshot(t.procs);
  const r = await runRoundTrips(conns, seconds);
  const cpu = cpuPer1k(before, cpuSnapshot(t.procs), r.operations);
  const latency = r.histogram.summary();
  r.histogram.destroy();
  if (r.operations === 0) throw new BenchError('BENCH_WARMUP_FAILED', `tcp-opaque ${t.name}: no round trip succeeded: ${r.firstError}`);
  return { latency, operations: r.operations, operationsPerSec: r.operations / r.elapsedSeconds, errors: r.errors, cpuSecondsPer1k: cpu };
}

async function measureNewConnections(t: TcpTarget, o: RunOptions, seconds: number): Promise<RunSample> {
  const before = cpuSnapshot(t.procs);
  const r = await runClosedLoop(o.concurrency, seconds, () => connectRoundTripClose(tcp(t.port), 'connect'));
  const cpu = cpuPer1k(before, cpuSnapshot(t.procs), r.operations);
  const latency = r.histogram.summary();
  r.histogram.destroy();
  if (r.operations === 0) throw new BenchError('BENCH_WARMUP_FAILED', `tcp-opaque-new-connections ${t.name}: no connection succeeded: ${r.firstError}`);
  return { latency, operations: r.operations, operationsPerSec: r.operations / r.elapsedSeconds, errors: r.errors, cpuSecondsPer1k: cpu };
}

function path(targets: readonly TcpTarget[], nginxStreamNote: string): string {
  const nginx = targets.some((t) => t.name === 'nginx') ? "nginx: client → nginx stream proxy (plain in, mTLS out) → nginx stream proxy (mTLS in, client certificate required) → echo" : nginxStreamNote;
  return `meshlet: client → outbound sidecar's MESHLET_OUTBOUND_TCP listener → mTLS → inbound sidecar's \`tcp\` port (policy per connection) → echo; ${nginx}; direct: client → echo (node:net, its own process)`;
}

export async function tcpOpaque(targets: readonly TcpTarget[], o: RunOptions, nginxStreamNote: string): Promise<ScenarioResult[]> {
  if (!targets.some((t) => t.name === 'nginx')) o.log(nginxStreamNote);
  const roundTrips = await interleave(
    'tcp-opaque',
    targets,
    o,
    async (t) => void (await measureRoundTrips(t, o, o.warmupSeconds)),
    (t) => measureRoundTrips(t, o, o.seconds),
  );
  const connects = await interleave(
    'tcp-opaque-new-connections',
    targets,
    o,
    async (t) => void (await measureNewConnections(t, o, o.warmupSeconds)),
    (t) => measureNewConnections(t, o, o.seconds),
  );
  const summarize = (runs: Map<string, RunSample[]>) => Object.fromEntries(targets.map((t) => [t.name, summarizeRuns(runs.get(t.name)!)]));
  return [
    compareTargets({
      id: 'tcp-opaque',
      title: 'Opaque TCP, persistent connections (1 KB echo round trips)',
      method: `${o.concurrency} persistent connections (opened and used once before the clock starts), closed loop, one 1 KB message in flight per connection, ${o.seconds} s after ${o.warmupSeconds} s warm-up; latency = write → last echoed byte, every round trip timed; ${path(targets, nginxStreamNote)}; CPU per 1,000 round trips of each proxy process`,
      unit: 'round trips/s',
      targets: summarize(roundTrips),
    }),
    compareTargets({
      id: 'tcp-opaque-new-connections',
      title: 'Opaque TCP, new connection per round trip (connect + 1 KB echo + close)',
      method: `${o.concurrency} closed-loop callers, each connection: connect, one 1 KB round trip, FIN and wait for the other side's; through a proxy pair that is a full TLS 1.3 mTLS handshake between the two proxies (neither resumes sessions), ${o.seconds} s after ${o.warmupSeconds} s warm-up; latency = connect → close, every connection timed; ${path(targets, nginxStreamNote)}; CPU per 1,000 connections of each proxy process`,
      unit: 'connections/s',
      targets: summarize(connects),
    }),
  ];
}
