import type { Metric, Registry } from 'prom-client';

/**
 * Hot-path metric vectors that live on a prom-client Registry.
 *
 * prom-client's bound children (`counter.labels(...)`) still hash the label object on every
 * `inc()`/`observe()` (they only bind the labels), which costs several hundred ns per call and
 * allocates a key string. A proxy records four or five samples per request, so meshlet keeps
 * the per-series state in plain objects the caller holds on to (a `CounterSeries` is a number
 * behind a field), and turns them into prom-client's JSON shape only when scraped. The
 * families cache the series by their own small composite keys; the measured difference is in
 * src/data-plane/metrics/request-metrics.bench.ts and docs/metrics.md.
 *
 * The objects below implement what Registry needs from a metric (name, help, type, get,
 * reset), so /metrics, `registry.metrics()` and exposition.ts render them like any other.
 */
export type Labels = Readonly<Record<string, string>>;

interface SampleJson {
  value: number;
  labels: Labels;
  metricName?: string;
}

interface MetricJson {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  values: SampleJson[];
  aggregator: 'sum';
}

export interface VecOptions {
  name: string;
  help: string;
  labelNames: readonly string[];
  registry: Registry;
  /** Runs before every scrape (e.g. to fold in live connections' byte counts). */
  collect?: () => void;
}

export class CounterSeries {
  value = 0;
  readonly labels: Labels;
  constructor(labels: Labels) {
    this.labels = labels;
  }
  inc(by = 1): void {
    this.value += by;
  }
}

/** A gauge series: same storage, may go down. */
export class GaugeSeries extends CounterSeries {
  dec(by = 1): void {
    this.value -= by;
  }
  set(v: number): void {
    this.value = v;
  }
}

abstract class Vec<S extends { labels: Labels }> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  abstract readonly type: MetricJson['type'];
  protected readonly all: S[] = [];
  readonly #collect: (() => void) | undefined;

  constructor(opts: VecOptions) {
    this.name = opts.name;
    this.help = opts.help;
    this.labelNames = opts.labelNames;
    this.#collect = opts.collect;
    opts.registry.registerMetric(this as unknown as Metric<string>);
  }

  /** Number of series ever created (the cardinality of this metric). */
  get size(): number {
    return this.all.length;
  }

  protected checkLabels(labels: Labels): void {
    const names = Object.keys(labels);
    if (names.length !== this.labelNames.length || this.labelNames.some((n) => typeof labels[n] !== 'string')) {
      throw new TypeError(`${this.name}: labels must be exactly ${this.labelNames.join(', ')}; got ${names.join(', ')}`);
    }
  }

  protected abstract samples(s: S, out: SampleJson[]): void;

  /** What prom-client's Registry calls on every scrape. */
  async get(): Promise<MetricJson> {
    this.#collect?.();
    const values: SampleJson[] = [];
    for (const s of this.all) this.samples(s, values);
    return { name: this.name, help: this.help, type: this.type, values, aggregator: 'sum' };
  }

  /** Registry.resetMetrics(): forget every series (holders of old series stop being exported). */
  reset(): void {
    this.all.length = 0;
  }
}

/**
 * Counters (or gauges) by label set. `series(labels)` creates a series; callers cache it.
 * Creating the same label set twice yields two series that are exported as one sample each,
 * so callers must cache — every family in this folder does.
 */
export class CounterVec extends Vec<CounterSeries> {
  readonly type: 'counter' | 'gauge';

  constructor(opts: VecOptions & { type?: 'counter' | 'gauge' }) {
    super(opts);
    this.type = opts.type ?? 'counter';
  }

  series(labels: Labels): CounterSeries {
    this.checkLabels(labels);
    labels = Object.isFrozen(labels) ? labels : Object.freeze({ ...labels });
    const s = this.type === 'gauge' ? new GaugeSeries(labels) : new CounterSeries(labels);
    this.all.push(s);
    return s;
  }

  gauge(labels: Labels): GaugeSeries {
    return this.series(labels) as GaugeSeries;
  }

  protected samples(s: CounterSeries, out: SampleJson[]): void {
    out.push({ value: s.value, labels: s.labels });
  }
}

export class HistogramSeries {
  readonly labels: Labels;
  /** counts[i] = observations in (bounds[i-1], bounds[i]]; the last slot is (last bound, +Inf). */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  /** The labels of each `_bucket` sample (with `le`), built at the first scrape and kept. */
  bucketLabels: readonly Labels[] | undefined;
  readonly #bounds: readonly number[];

  constructor(labels: Labels, bounds: readonly number[]) {
    this.labels = labels;
    this.#bounds = bounds;
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(v: number): void {
    const b = this.#bounds;
    // Linear scan: 16 bounds, and most proxy latencies fall in the first few.
    let i = 0;
    while (i < b.length && v > b[i]!) i++;
    this.counts[i]!++;
    this.sum += v;
    this.count++;
  }
}

export class HistogramVec extends Vec<HistogramSeries> {
  readonly type = 'histogram' as const;
  readonly buckets: readonly number[];
  readonly #leLabels: string[];
  readonly #bucketName: string;
  readonly #sumName: string;
  readonly #countName: string;

  constructor(opts: VecOptions & { buckets: readonly number[] }) {
    super(opts);
    const sorted = [...opts.buckets].sort((a, b) => a - b);
    if (sorted.length === 0 || sorted.some((b, i) => !Number.isFinite(b) || (i > 0 && b === sorted[i - 1]))) {
      throw new TypeError(`${opts.name}: buckets must be distinct finite numbers`);
    }
    this.buckets = Object.freeze(sorted);
    this.#leLabels = [...sorted.map(String), '+Inf'];
    this.#bucketName = `${opts.name}_bucket`;
    this.#sumName = `${opts.name}_sum`;
    this.#countName = `${opts.name}_count`;
  }

  series(labels: Labels): HistogramSeries {
    this.checkLabels(labels);
    labels = Object.isFrozen(labels) ? labels : Object.freeze({ ...labels });
    const s = new HistogramSeries(labels, this.buckets);
    this.all.push(s);
    return s;
  }

  protected samples(s: HistogramSeries, out: SampleJson[]): void {
    // Frozen and kept, like every label object here, so exposition.ts renders each once.
    const bucketLabels = (s.bucketLabels ??= this.#leLabels.map((le) => Object.freeze({ ...s.labels, le })));
    let cumulative = 0;
    for (let i = 0; i < s.counts.length; i++) {
      cumulative += s.counts[i]!;
      out.push({ metricName: this.#bucketName, value: cumulative, labels: bucketLabels[i]! });
    }
    out.push({ metricName: this.#sumName, value: s.sum, labels: s.labels });
    out.push({ metricName: this.#countName, value: s.count, labels: s.labels });
  }
}
