/**
 * Retry delays for reconnecting clients: the meshlet-ca source (Certify retries) and the
 * SPIFFE Workload API source (stream reconnects).
 *
 * Two growth shapes, because the two callers follow different conventions:
 * - linear (`stepMs`): go-spiffe's Workload API client waits 1 s, 2 s, 3 s … up to 30 s,
 *   and REFERENCE.md asks us to do the same;
 * - exponential (`factor`): the usual choice when many clients hammer one server (the CA).
 *
 * Jitter spreads a fleet of sidecars that lost the same server at the same moment, so
 * they do not all come back in the same millisecond (the thundering herd after a CA
 * restart). `jitter` is the fraction of the delay that is randomised DOWNWARDS: with
 * jitter 0.2 a 10 s delay becomes a uniform value in [8 s, 10 s]. Downwards only, so
 * `maxMs` stays a true upper bound that callers can document.
 */
import { MeshletError } from '../../../common/errors/meshlet-error.ts';

export interface BackoffOptions {
  /** First delay. */
  initialMs: number;
  /** No delay is ever longer than this. */
  maxMs: number;
  /** Linear growth: each delay is the previous plus this. Exclusive with `factor`. */
  stepMs?: number;
  /** Exponential growth: each delay is the previous times this (> 1). Default 2 when `stepMs` is not given. */
  factor?: number;
  /** Fraction in [0, 1] of each delay that is randomised downwards. Default 0. */
  jitter?: number;
  /** Source of randomness in [0, 1); injectable so tests can pin it. Default Math.random. */
  random?: () => number;
}

export class BackoffOptionsError extends MeshletError {
  constructor(message: string) {
    super('BACKOFF_BAD_OPTIONS', message);
  }
}

export class Backoff {
  readonly #initialMs: number;
  readonly #maxMs: number;
  readonly #stepMs: number | undefined;
  readonly #factor: number;
  readonly #jitter: number;
  readonly #random: () => number;
  /** The un-jittered delay the next call to next() returns (before jitter). */
  #base: number;
  #attempts = 0;

  constructor(options: BackoffOptions) {
    const { initialMs, maxMs, stepMs, factor, jitter = 0, random = Math.random } = options;
    if (!Number.isFinite(initialMs) || initialMs < 0) throw new BackoffOptionsError(`initialMs must be a finite number >= 0, got ${initialMs}`);
    if (!Number.isFinite(maxMs) || maxMs < initialMs) throw new BackoffOptionsError(`maxMs must be a finite number >= initialMs (${initialMs}), got ${maxMs}`);
    if (stepMs !== undefined && factor !== undefined) throw new BackoffOptionsError('give either stepMs (linear) or factor (exponential), not both');
    if (stepMs !== undefined && (!Number.isFinite(stepMs) || stepMs < 0)) throw new BackoffOptionsError(`stepMs must be a finite number >= 0, got ${stepMs}`);
    if (factor !== undefined && (!Number.isFinite(factor) || factor < 1)) throw new BackoffOptionsError(`factor must be a finite number >= 1, got ${factor}`);
    if (!Number.isFinite(jitter) || jitter < 0 || jitter > 1) throw new BackoffOptionsError(`jitter must be a number in [0, 1], got ${jitter}`);
    this.#initialMs = initialMs;
    this.#maxMs = maxMs;
    this.#stepMs = stepMs;
    this.#factor = factor ?? 2;
    this.#jitter = jitter;
    this.#random = random;
    this.#base = initialMs;
  }

  /** The delay before the next attempt, in ms (an integer); advances the sequence. */
  next(): number {
    const base = this.#base;
    this.#attempts++;
    const grown = this.#stepMs !== undefined ? base + this.#stepMs : base * this.#factor;
    this.#base = Math.min(this.#maxMs, grown);
    return Math.round(base - base * this.#jitter * this.#random());
  }

  /** Back to the first delay: call after a success. */
  reset(): void {
    this.#base = this.#initialMs;
    this.#attempts = 0;
  }

  /** How many delays next() has handed out since the last reset. */
  get attempts(): number {
    return this.#attempts;
  }
}
