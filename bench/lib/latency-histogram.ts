import * as hdr from 'hdr-histogram-js';

/**
 * Latency in microseconds, recorded in an HDR histogram (the one autocannon itself ships with,
 * so no new dependency). 3 significant digits: a 80 µs sample is kept as 80 µs, a 12.4 ms one
 * within 10 µs — autocannon's own histogram stores whole milliseconds, too coarse for one hop.
 */
export interface LatencySummary {
  count: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  p999Us: number;
  maxUs: number;
  meanUs: number;
}

export const PERCENTILES = ['p50Us', 'p90Us', 'p99Us', 'p999Us'] as const;
export type PercentileKey = (typeof PERCENTILES)[number];

export class LatencyHistogram {
  readonly #h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });

  /** Records one latency given as a process.hrtime.bigint() difference (nanoseconds). */
  recordNanos(nanos: bigint): void {
    const us = Number(nanos) / 1000;
    this.#h.recordValue(us < 1 ? 1 : Math.round(us));
  }

  get count(): number {
    return this.#h.totalCount;
  }

  summary(): LatencySummary {
    const h = this.#h;
    // HDR answers a bucket's highest equivalent value; never report a percentile above the max seen.
    const at = (p: number) => Math.min(h.getValueAtPercentile(p), h.maxValue);
    return {
      count: h.totalCount,
      p50Us: at(50),
      p90Us: at(90),
      p99Us: at(99),
      p999Us: at(99.9),
      maxUs: h.maxValue,
      meanUs: Math.round(h.mean),
    };
  }

  /** Frees the histogram's buffers (hdr-histogram-js may back them with WebAssembly memory). */
  destroy(): void {
    this.#h.destroy();
  }
}
