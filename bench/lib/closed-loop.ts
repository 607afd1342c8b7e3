import { LatencyHistogram } from './latency-histogram.ts';

export interface ClosedLoopResult {
  histogram: LatencyHistogram;
  operations: number;
  errors: number;
  /** The first error's message, to say why a target failed. */
  firstError: string | null;
  elapsedSeconds: number;
}

/**
 * `concurrency` callers, each starting its next operation as soon as the last one ended, for
 * `seconds`; every successful operation timed with process.hrtime.bigint() (µs resolution).
 * Used where autocannon cannot drive the protocol (gRPC) or the thing measured is the
 * connection itself (one mTLS handshake per request).
 */
export async function runClosedLoop(concurrency: number, seconds: number, op: () => Promise<void>): Promise<ClosedLoopResult> {
  const histogram = new LatencyHistogram();
  let operations = 0;
  let errors = 0;
  let firstError: string | null = null;
  const start = process.hrtime.bigint();
  const end = start + BigInt(Math.round(seconds * 1e9));
  const caller = async () => {
    while (process.hrtime.bigint() < end) {
      const t0 = process.hrtime.bigint();
      try {
        await op();
        histogram.recordNanos(process.hrtime.bigint() - t0);
        operations++;
      } catch (err) {
        errors++;
        firstError ??= (err as Error).message;
        // A failing target must not spin the loop at full speed.
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, caller));
  return { histogram, operations, errors, firstError, elapsedSeconds: Number(process.hrtime.bigint() - start) / 1e9 };
}
