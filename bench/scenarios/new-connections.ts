import * as tls from 'node:tls';
import { runClosedLoop } from '../lib/closed-loop.ts';
import { dialerFor, type Dial } from '../lib/mtls-dial.ts';
import { cpuPer1k, cpuSnapshot } from '../lib/process-usage.ts';
import { compareTargets, summarizeRuns, type RunSample, type ScenarioResult } from '../lib/figures.ts';
import { interleave } from '../lib/interleave.ts';
import { BENCH_PATH } from '../lib/bench-policy.ts';
import { BenchError } from '../lib/bench-error.ts';
import type { RunOptions } from '../lib/run-options.ts';
import type { ConnectTarget } from '../lib/topology.ts';

/**
 * One new connection per request: the client pod's SVID dials the server side's mTLS listener
 * (meshlet inbound / nginx inbound), sends one GET with `Connection: close` and reads to the
 * end. What is measured is the full TLS 1.3 handshake with client certificate verification,
 * the policy decision and one upstream request — per second, and in CPU per 1,000 connections
 * of the inbound process. Direct is the same over plain TCP to the upstream.
 */
function oneRequest(dial: Dial, hostHeader: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = dial();
    let head = '';
    socket.setNoDelay?.(true);
    socket.once(socket instanceof tls.TLSSocket ? 'secureConnect' : 'connect', () => {
      socket.write(`GET ${BENCH_PATH} HTTP/1.1\r\nHost: ${hostHeader}\r\nConnection: close\r\n\r\n`);
    });
    socket.on('data', (c: Buffer) => {
      if (head.length < 12) head += c.toString('latin1', 0, 12);
    });
    socket.once('error', reject);
    socket.once('close', () => {
      const status = head.slice(9, 12);
      if (status === '200') resolve();
      else reject(new Error(`status ${status || '(none)'}`));
    });
  });
}

async function measure(t: ConnectTarget, o: RunOptions, seconds: number, resume: boolean): Promise<RunSample> {
  const dial = dialerFor(t, { resume });
  const before = cpuSnapshot(t.procs);
  const r = await runClosedLoop(o.concurrency, seconds, () => oneRequest(dial, t.hostHeader));
  const latency = r.histogram.summary();
  r.histogram.destroy();
  if (r.operations === 0) throw new BenchError('BENCH_WARMUP_FAILED', `${t.name}: no connection succeeded: ${r.firstError}`);
  return {
    latency,
    operations: r.operations,
    operationsPerSec: r.operations / r.elapsedSeconds,
    errors: r.errors,
    cpuSecondsPer1k: cpuPer1k(before, cpuSnapshot(t.procs), r.operations),
  };
}

/**
 * Two runs of the scenario: every connection a full handshake (`new-connections`: a peer's
 * first connection), and every connection resuming the last session the server gave the
 * callers (`new-connections-resumed`: a peer sidecar's next connections, TLS 1.3 tickets, which
 * meshlet and nginx both issue by default). The client certificate is verified either way.
 */
export async function newConnections(targets: readonly ConnectTarget[], o: RunOptions, resume = false): Promise<ScenarioResult> {
  const id = resume ? 'new-connections-resumed' : 'new-connections';
  o.log(`${id}: a new (mTLS) connection per request, ${o.concurrency} concurrent callers${resume ? ', resuming the last session' : ''}`);
  const runs = await interleave(
    id,
    targets,
    o,
    async (t) => void (await measure(t, o, o.warmupSeconds, resume)),
    (t) => measure(t, o, o.seconds, resume),
  );
  const handshake = resume
    ? 'TLS 1.3 resuming the last session ticket the server gave the callers (as a peer sidecar does), the client SVID still verified'
    : 'TLS 1.3 full handshake with the client SVID';
  return compareTargets({
    id,
    title: resume ? 'New connection per request, session resumed (mTLS + 1 request)' : 'New connection per request (mTLS handshake + 1 request)',
    method: `${o.concurrency} closed-loop callers dialing the server side's listener directly (meshlet inbound / nginx inbound; direct = plain TCP to the upstream), Connection: close, ${handshake}, ${o.seconds} s after ${o.warmupSeconds} s warm-up; latency = connect + handshake + request, every connection timed; CPU is the inbound process's per 1,000 connections`,
    unit: 'connections/s',
    targets: Object.fromEntries(targets.map((t) => [t.name, summarizeRuns(runs.get(t.name)!)])),
  });
}
