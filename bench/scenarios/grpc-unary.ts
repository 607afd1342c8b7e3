import * as grpc from '@grpc/grpc-js';
import { callEcho, EchoClient } from '../lib/grpc-echo.ts';
import { runClosedLoop } from '../lib/closed-loop.ts';
import { cpuPer1k, cpuSnapshot } from '../lib/process-usage.ts';
import { compareTargets, summarizeRuns, type RunSample, type ScenarioResult, type UnsupportedTarget } from '../lib/figures.ts';
import { interleave } from '../lib/interleave.ts';
import type { RunOptions } from '../lib/run-options.ts';
import type { GrpcTarget } from '../lib/topology.ts';

/**
 * gRPC unary (bench.v1.Echo/Echo, 100 B request, 1 KB reply) from a @grpc/grpc-js client to a
 * grpc-js server: `concurrency` calls in flight on one channel (HTTP/2 multiplexed), each timed
 * with process.hrtime.bigint(). A target whose probe call fails gets no figure, only the reason
 * (the meshlet sidecar may not carry gRPC yet): never a made-up number.
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

export async function grpcUnary(targets: readonly GrpcTarget[], o: RunOptions, meshletNote: string | null): Promise<ScenarioResult> {
  const id = 'grpc-unary';
  o.log(`${id}: ${o.concurrency} calls in flight on one channel`);
  const unsupported: Record<string, UnsupportedTarget> = {};
  const measurable: GrpcTarget[] = [];
  for (const t of targets) {
    const why = t.name === 'meshlet' && meshletNote ? meshletNote : await probe(t);
    if (why === null) measurable.push(t);
    else {
      unsupported[t.name] = { supported: false, note: t.name === 'meshlet' ? `meshlet: not supported yet (${why})` : `${t.name}: ${why}` };
      o.log(`  ${id}: no figure for ${t.name}: ${unsupported[t.name]!.note}`);
    }
  }
  const runs = await interleave(
    id,
    measurable,
    o,
    async (t) => void (await measure(t, o, o.warmupSeconds)),
    (t) => measure(t, o, o.seconds),
  );
  return compareTargets({
    id,
    title: 'gRPC unary, 1 KB reply',
    method: `@grpc/grpc-js client, ${o.concurrency} calls in flight on one channel, closed loop, ${o.seconds} s after ${o.warmupSeconds} s warm-up; every call timed (µs)`,
    unit: 'calls/s',
    targets: { ...Object.fromEntries(measurable.map((t) => [t.name, summarizeRuns(runs.get(t.name)!)])), ...unsupported },
  });
}
