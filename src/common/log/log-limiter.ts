import { MeshletError } from '../errors/meshlet-error.ts';

/**
 * Rate limits for log lines that a remote caller can trigger (policy denials, admin
 * refusals). Issue 11 item 9: 3,000 denied HTTP/2 requests on one connection wrote 21 MB of
 * logs in 0.8 s. Metrics count every event; the log only needs enough lines to say what is
 * happening, plus how many lines it left out.
 *
 * Two token buckets decide whether a line is written:
 * - one per key (an event and its reason, e.g. `denied` + `caller is not authorized by route
 *   "admin"`): `linesPerSecond` refill, `burst` capacity. A flood on one route cannot hide a
 *   denial on another.
 * - one for all keys together, `TOTAL_FACTOR` times both: many routes hit at once stay bounded.
 * At most `maxKeys` keys get their own bucket; later keys share one overflow bucket per event
 * (memory stays bounded even if a reason ever carried request data).
 *
 * A dropped line is counted. While lines are being dropped, one summary line per
 * `summaryIntervalMs` (and one on `close()`) says how many, per event; the counts are exact:
 * lines written + lines reported suppressed = events.
 */
export interface LogLimits {
  /** Lines per second per key (token refill rate). */
  linesPerSecond: number;
  /** Lines a key may write at once after a quiet period (bucket capacity). */
  burst: number;
}

export const DEFAULT_LOG_LIMITS: Readonly<LogLimits> = Object.freeze({ linesPerSecond: 5, burst: 20 });
/** The bucket shared by every key allows this many times the per-key rate and burst. */
export const TOTAL_FACTOR = 4;
export const DEFAULT_MAX_KEYS = 1_000;
export const DEFAULT_SUMMARY_INTERVAL_MS = 1_000;

export class LogLimitError extends MeshletError {
  constructor(message: string) {
    super('LOG_BAD_LIMIT', message);
  }
}

/** What the limiter reports when it dropped lines: the exact count, per event. */
export interface SuppressionSummary {
  suppressed: number;
  byEvent: Record<string, number>;
  /** From the first dropped line of this period to the summary. */
  periodMs: number;
}

export interface LogLimiterOptions extends Partial<LogLimits> {
  /** Called (from a timer, or from close()) with what was dropped since the last summary. */
  onSuppressed: (summary: SuppressionSummary) => void;
  maxKeys?: number;
  summaryIntervalMs?: number;
  /** Milliseconds, monotonic; tests may pass their own clock. */
  now?: () => number;
}

class Bucket {
  tokens: number;
  last: number;
  constructor(tokens: number, now: number) {
    this.tokens = tokens;
    this.last = now;
  }

  take(ratePerMs: number, capacity: number, now: number): boolean {
    const refill = this.tokens + (now - this.last) * ratePerMs;
    this.tokens = refill > capacity ? capacity : refill;
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

const OVERFLOW_KEY = '\u0000overflow';

export class LogLimiter {
  readonly limits: Readonly<LogLimits>;
  readonly #ratePerMs: number;
  readonly #totalRatePerMs: number;
  readonly #totalBurst: number;
  readonly #total: Bucket;
  /** event -> key -> bucket (nested: no key string is built per call). */
  readonly #buckets = new Map<string, Map<string, Bucket>>();
  #keys = 0;
  readonly #maxKeys: number;
  readonly #summaryIntervalMs: number;
  readonly #now: () => number;
  readonly #onSuppressed: (summary: SuppressionSummary) => void;
  #suppressed = 0;
  #byEvent: Record<string, number> = {};
  #periodStart = 0;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(opts: LogLimiterOptions) {
    const linesPerSecond = opts.linesPerSecond ?? DEFAULT_LOG_LIMITS.linesPerSecond;
    const burst = opts.burst ?? DEFAULT_LOG_LIMITS.burst;
    if (!Number.isFinite(linesPerSecond) || linesPerSecond <= 0) throw new LogLimitError(`linesPerSecond must be a positive number; got ${linesPerSecond}`);
    if (!Number.isInteger(burst) || burst < 1) throw new LogLimitError(`burst must be a positive integer; got ${burst}`);
    this.limits = Object.freeze({ linesPerSecond, burst });
    this.#ratePerMs = linesPerSecond / 1000;
    this.#totalRatePerMs = this.#ratePerMs * TOTAL_FACTOR;
    this.#totalBurst = burst * TOTAL_FACTOR;
    this.#maxKeys = opts.maxKeys ?? DEFAULT_MAX_KEYS;
    this.#summaryIntervalMs = opts.summaryIntervalMs ?? DEFAULT_SUMMARY_INTERVAL_MS;
    this.#now = opts.now ?? (() => performance.now());
    this.#onSuppressed = opts.onSuppressed;
    this.#total = new Bucket(this.#totalBurst, this.#now());
  }

  /** True: write the line. False: it was counted for the next summary instead. */
  allow(event: string, key: string): boolean {
    const now = this.#now();
    if (this.#bucket(event, key, now).take(this.#ratePerMs, this.limits.burst, now) && this.#total.take(this.#totalRatePerMs, this.#totalBurst, now)) return true;
    this.#suppress(event, now);
    return false;
  }

  /** Writes the pending summary now (if any line was dropped since the last one). */
  flush(): void {
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#suppressed === 0) return;
    const summary: SuppressionSummary = { suppressed: this.#suppressed, byEvent: this.#byEvent, periodMs: Math.round(this.#now() - this.#periodStart) };
    this.#suppressed = 0;
    this.#byEvent = {};
    this.#onSuppressed(summary);
  }

  /** Flushes the last summary; later drops are still counted and flushed by the next close()/flush(). */
  close(): void {
    this.#closed = true;
    this.flush();
  }

  #bucket(event: string, key: string, now: number): Bucket {
    let byKey = this.#buckets.get(event);
    if (byKey === undefined) this.#buckets.set(event, (byKey = new Map()));
    let b = byKey.get(key);
    if (b !== undefined) return b;
    if (this.#keys >= this.#maxKeys) key = OVERFLOW_KEY;
    b = byKey.get(key);
    if (b === undefined) {
      byKey.set(key, (b = new Bucket(this.limits.burst, now)));
      this.#keys++;
    }
    return b;
  }

  #suppress(event: string, now: number): void {
    if (this.#suppressed === 0) this.#periodStart = now;
    this.#suppressed++;
    this.#byEvent[event] = (this.#byEvent[event] ?? 0) + 1;
    if (this.#timer === undefined && !this.#closed) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.flush();
      }, this.#summaryIntervalMs);
      // A pending summary must not keep a stopping process alive; close() writes it.
      this.#timer.unref();
    }
  }
}

/**
 * Largest size of a string field in a log line a caller can influence (path, method, caller,
 * reason, route). Longer values keep their first bytes and end with TRUNCATED_MARKER.
 */
export const MAX_FIELD_BYTES = 256;

const encoder = new TextEncoder();
const scratch = new Uint8Array(MAX_FIELD_BYTES);

/**
 * `value` if it fits in `maxBytes` of UTF-8, else its first `maxBytes` bytes (whole
 * characters only) followed by `…[truncated N bytes]`, N being the full size in bytes.
 */
export function boundField(value: string, maxBytes?: number): string;
export function boundField(value: string | undefined, maxBytes?: number): string | undefined;
export function boundField(value: string | null, maxBytes?: number): string | null;
export function boundField(value: string | null | undefined, maxBytes = MAX_FIELD_BYTES): string | null | undefined {
  // A UTF-16 unit is at most 3 UTF-8 bytes: short strings need no encoding at all.
  if (value == null || value.length * 3 <= maxBytes) return value;
  const total = Buffer.byteLength(value, 'utf8');
  if (total <= maxBytes) return value;
  const into = maxBytes <= scratch.length ? scratch.subarray(0, maxBytes) : new Uint8Array(maxBytes);
  // encodeInto writes whole characters only: never half of a multi-byte one.
  const { read } = encoder.encodeInto(value, into);
  return `${value.slice(0, read)}${truncatedMarker(total)}`;
}

export function truncatedMarker(totalBytes: number): string {
  return `…[truncated ${totalBytes} bytes]`;
}
