import * as grpc from '@grpc/grpc-js';
import { callEcho, EchoClient } from '../lib/grpc-echo.ts';
import { runClosedLoop } from '../lib/closed-loop.ts';
import { cpuPer1k, cpuSnapshot } from '../lib/process-usage.ts';
import { compareTargets, summarizeRuns, type RunSample, type ScenarioResult } from '../lib/figures.ts';
import { interleave } from '../lib/interleave.ts';
import { BenchError } from '../lib/bench-error.ts';
import type { RunOptions } from '../lib/run-options.ts';
import type { GrpcTarget } from '../lib/topology.ts';

/**
 * gRPC unary (bench.v1.Echo/Echo, 100 B request, 1 KB reply) from a @grpc/grpc-js client to a
 * grpc-js server: `concurrency` calls in flight on one channel (HTTP/2 multiplexed), each timed
 * with process.hrtime.bigint(). A target whose first call fails stops the bench
 * (BENCH_WARMUP_FAILED, with the gRPC error): there would be no figure to compare.
 */
function clientFor(t: GrpcTarget): grpc.Client {
  return new EchoClient(t.address, grpc.credentials.createInsecure(), { 'grpc.default_authority': t.authority });
}

async function probe(t: GrpcTarget): Promise<string | null> {
  const client = clientFor(t);
  try {
    await callEcho(client, 5000);
    return null;
  } catch (err) {
    return (err as Error).message;
  } finally {
    client.close();
  }
}

async function measure(t: GrpcTarget, o: RunOptions, seconds: number): Promise<RunSample> {
  const client = clientFor(t);
  try {
    await callEcho(client, 5000); // connect outside the timed window
    const before = cpuSnapshot(t.procs);
    const r = await runClosedLoop(o.concurrency, seconds, async () => void (await callEcho(client, 5000)));
    const latency = r.histogram.summary();
    r.histogram.destroy();
    return {
      latency,
      operations: r.operations,
      operationsPerSec: r.operations / r.elapsedSeconds,
      errors: r.errors,
      cpuSecondsPer1k: cpuPer1k(before, cpuSnapshot(t.procs), r.operations),
    };
  } finally {
    client.close();
  }
}

export async function grpcUnary(targets: readonly GrpcTarget[], o: RunOptions): Promise<ScenarioResult> {
  const id = 'grpc-unary';
  o.log(`${id}: ${o.concurrency} calls in flight on one channel`);
  for (const t of targets) {
    const why = await probe(t);
    if (why !== null) throw new BenchError('BENCH_WARMUP_FAILED', `${id}: the first call through ${t.name} (${t.address}, :authority ${t.authority}) failed: ${why}`);
  }
  const runs = await interleave(
    id,
    targets,
    o,
    async (t) => void (await measure(t, o, o.warmupSeconds)),
    (t) => measure(t, o, o.seconds),
  );
  return compareTargets({
    id,
    title: 'gRPC unary, 1 KB reply',
    method: `@grpc/grpc-js client, ${o.concurrency} calls in flight on one channel, closed loop, ${o.seconds} s after ${o.warmupSeconds} s warm-up; every call timed (µs)`,
    unit: 'calls/s',
    targets: Object.fromEntries(targets.map((t) => [t.name, summarizeRuns(runs.get(t.name)!)])),
  });
}
