// autocannon in its own process, so the load generator never shares an event loop with the
// microsecond sampler (a busy loop there would show up as latency of the target). Forked once
// per bench run and reused: starting node and loading autocannon for each of the ~100 runs
// would cost seconds each on a loaded machine.
//   IPC in: LoadSpec; IPC out: { result: LoadResult } | { error: string }
import autocannon from 'autocannon';
import type { LoadResult, LoadSpec } from './load.ts';

async function runOne(spec: LoadSpec): Promise<LoadResult> {
  const result = await autocannon({
    url: spec.url,
    connections: spec.connections,
    duration: spec.seconds,
    headers: spec.headers,
    // Fixed rate: autocannon corrects coordinated omission (recordValueWithExpectedInterval) unless told not to.
    ...(spec.overallRate ? { overallRate: spec.overallRate } : {}),
  });
  return {
    requests: result.requests.total,
    requestsPerSec: result.requests.total / Math.max(0.001, result.duration),
    errors: result.errors + result.timeouts + result.non2xx,
    latencyMs: { p50: result.latency.p50, p90: result.latency.p90, p99: result.latency.p99, p999: result.latency.p99_9 },
  };
}

process.on('message', (spec: LoadSpec) => {
  runOne(spec).then(
    (result) => process.send!({ result }),
    (err: Error) => process.send!({ error: err.message }),
  );
});
process.on('disconnect', () => process.exit(0));
