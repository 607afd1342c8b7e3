/**
 * A token bucket per identity: each SPIFFE ID may burst `burst` Certify calls, then gets
 * one more every `1 / refillPerSecond` seconds. A healthy sidecar calls Certify once per
 * half SVID lifetime (12 h by default), plus once per restart; a pod in a crash loop or a
 * stolen token replayed in a loop is what the limit is for.
 *
 * Memory is bounded: a bucket that has refilled to full carries no information (a fresh
 * bucket would be the same), so `sweep()` drops those, and the map never holds more than
 * `maxTracked` identities (beyond that, the oldest entries are dropped first — an attacker
 * can at worst reset buckets, never grow memory).
 */
export interface RateLimitOptions {
  /** Calls allowed at once. */
  burst: number;
  /** Tokens added back per second. */
  refillPerSecond: number;
  /** Upper bound on identities tracked at once. Default 100 000. */
  maxTracked?: number;
  /** Clock in ms; injectable for tests. Default performance.now. */
  now?: () => number;
}

interface Bucket {
  tokens: number;
  updatedMs: number;
}

export interface RateLimitDecision {
  allowed: boolean;
  /** When refused: ms until one token is back. */
  retryAfterMs: number;
}

export class TokenBucketLimiter {
  readonly #burst: number;
  readonly #refillPerMs: number;
  readonly #maxTracked: number;
  readonly #now: () => number;
  readonly #buckets = new Map<string, Bucket>();

  constructor(options: RateLimitOptions) {
    if (!(options.burst >= 1)) throw new RangeError(`burst must be >= 1, got ${options.burst}`);
    if (!(options.refillPerSecond > 0)) throw new RangeError(`refillPerSecond must be > 0, got ${options.refillPerSecond}`);
    this.#burst = options.burst;
    this.#refillPerMs = options.refillPerSecond / 1000;
    this.#maxTracked = options.maxTracked ?? 100_000;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Takes one token for `key` if there is one. */
  take(key: string): RateLimitDecision {
    const now = this.#now();
    let bucket = this.#buckets.get(key);
    if (bucket === undefined) {
      if (this.#buckets.size >= this.#maxTracked) this.#evict();
      bucket = { tokens: this.#burst, updatedMs: now };
      this.#buckets.set(key, bucket);
    } else {
      bucket.tokens = Math.min(this.#burst, bucket.tokens + (now - bucket.updatedMs) * this.#refillPerMs);
      bucket.updatedMs = now;
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { allowed: true, retryAfterMs: 0 };
    }
    return { allowed: false, retryAfterMs: Math.ceil((1 - bucket.tokens) / this.#refillPerMs) };
  }

  /** Drops the buckets that have refilled to full. Call now and then (the service does, every minute). */
  sweep(): void {
    const now = this.#now();
    for (const [key, bucket] of this.#buckets) {
      if (bucket.tokens + (now - bucket.updatedMs) * this.#refillPerMs >= this.#burst) this.#buckets.delete(key);
    }
  }

  get size(): number {
    return this.#buckets.size;
  }

  #evict(): void {
    this.sweep();
    // Still full of live buckets: drop the oldest insertions (Map iterates in insertion order).
    const excess = this.#buckets.size - this.#maxTracked + 1;
    if (excess <= 0) return;
    let dropped = 0;
    for (const key of this.#buckets.keys()) {
      if (dropped++ >= excess) break;
      this.#buckets.delete(key);
    }
  }
}
