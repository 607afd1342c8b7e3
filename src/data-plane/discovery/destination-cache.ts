import { ClusterScope, destinationKey } from './cluster-scope.ts';
import type { Destination, DestinationResolver, Resolution, ResolutionKind, ResolveFailure, UnavailableResolution } from './resolution.ts';

/**
 * The sidecar's cache of discovery answers, per (host, port) — docs/discovery.md "The sidecar
 * client".
 *
 * - **Synchronous when cached**: `resolve()` returns the cached Resolution itself; a promise
 *   exists only while an answer is being fetched. A hit allocates nothing (two map lookups
 *   and a move to the LRU tail).
 * - **Single flight**: concurrent misses for one key share one Resolve call.
 * - **TTLs from when the answer arrived**: `meshed` and `mixed` (positiveTtlMs, 10 s),
 *   `unmeshed` and `external` (negativeTtlMs, 10 s), `unknown` (unknownTtlMs, 1 s: the next
 *   connection asks again soon, but a client retrying in a loop does not turn into a Resolve
 *   loop). An expired answer is never served, whatever its kind — in particular never an
 *   expired `unmeshed` (a pod that turned meshed would be sent plaintext) nor an expired
 *   `mixed` (its plaintext endpoints). The TTLs are far inside the control plane's own
 *   staleness bound (MESHLET_DISCOVERY_MAX_STALENESS, 1 m).
 * - **Refresh ahead**: a hit in the last `refreshAheadFraction` (20 %) of an answer's life
 *   fetches the next one in the background, so a hot destination does not pay a round trip
 *   every TTL. If that fetch fails, the answer is still served until its own TTL, no longer.
 * - **Failures** (the identity service unreachable, UNAVAILABLE, UNAUTHENTICATED, any error):
 *   `{ kind: 'unavailable', reason, inCluster }` for a key with no valid answer, remembered
 *   for failureBackoffMs (1 s) so a down identity service is not called per connection.
 * - **Bounded**: at most maxEntries keys (4096), least recently used evicted first. A key
 *   being fetched is evicted like any other; its callers still get their answer.
 */
export interface DestinationCacheOptions {
  resolver: DestinationResolver;
  /** Where a destination with no answer may be (inside: refuse; outside: egress rules). */
  scope: ClusterScope;
  /** meshed, mixed. Default 10 s. */
  positiveTtlMs?: number;
  /** unmeshed, external. Default 10 s. */
  negativeTtlMs?: number;
  /** unknown. Default 1 s. */
  unknownTtlMs?: number;
  /** How long a failure is remembered. Default 1 s. */
  failureBackoffMs?: number;
  /** Refresh a hit answer in the background once this fraction of its TTL is left. Default 0.2; 0 disables. */
  refreshAheadFraction?: number;
  /** Keys held at most. Default 4096. */
  maxEntries?: number;
  /** The clock, in ms (tests inject one). Default Date.now. */
  now?: () => number;
  /** Called once per Resolve round trip (not per hit), e.g. for logs and metrics. */
  onFetched?: (destination: Destination, resolution: Resolution, elapsedMs: number) => void;
}

export const DESTINATION_CACHE_DEFAULTS = {
  positiveTtlMs: 10_000,
  negativeTtlMs: 10_000,
  unknownTtlMs: 1_000,
  failureBackoffMs: 1_000,
  refreshAheadFraction: 0.2,
  maxEntries: 4096,
} as const;

class Entry {
  readonly host: string;
  readonly port: number;
  value: Resolution | undefined = undefined;
  /** `value` is served while now < expiresAt. */
  expiresAt = 0;
  /** A hit at or after this starts a background refresh. */
  refreshAt = Infinity;
  inflight: Promise<Resolution> | undefined = undefined;
  /** Whether the entry is still in the cache (an evicted one must not be revived by its fetch). */
  live = true;
  prev: Entry | undefined = undefined;
  next: Entry | undefined = undefined;

  constructor(host: string, port: number) {
    this.host = host;
    this.port = port;
  }
}

export class DestinationCache {
  readonly #resolver: DestinationResolver;
  readonly #scope: ClusterScope;
  readonly #ttl: Record<ResolutionKind, number>;
  readonly #refreshAhead: number;
  readonly #maxEntries: number;
  readonly #now: () => number;
  readonly #onFetched: DestinationCacheOptions['onFetched'];
  /** host (as the caller spelled it, and as keyed) -> port -> entry. */
  readonly #byHost = new Map<string, Map<number, Entry>>();
  #size = 0;
  /** LRU list: head is the least recently used. */
  #head: Entry | undefined;
  #tail: Entry | undefined;

  constructor(options: DestinationCacheOptions) {
    const d = DESTINATION_CACHE_DEFAULTS;
    this.#resolver = options.resolver;
    this.#scope = options.scope;
    const positive = options.positiveTtlMs ?? d.positiveTtlMs;
    const negative = options.negativeTtlMs ?? d.negativeTtlMs;
    this.#ttl = {
      meshed: positive,
      mixed: positive,
      unmeshed: negative,
      external: negative,
      unknown: options.unknownTtlMs ?? d.unknownTtlMs,
      unavailable: options.failureBackoffMs ?? d.failureBackoffMs,
    };
    this.#refreshAhead = options.refreshAheadFraction ?? d.refreshAheadFraction;
    this.#maxEntries = options.maxEntries ?? d.maxEntries;
    if (!(this.#maxEntries >= 1)) throw new RangeError('maxEntries must be at least 1');
    if (!(this.#refreshAhead >= 0 && this.#refreshAhead < 1)) throw new RangeError('refreshAheadFraction must be in [0, 1)');
    for (const [kind, ms] of Object.entries(this.#ttl)) if (!(ms >= 0)) throw new RangeError(`the ${kind} TTL must be >= 0`);
    this.#now = options.now ?? Date.now;
    this.#onFetched = options.onFetched;
  }

  /** Keys held. */
  get size(): number {
    return this.#size;
  }

  /**
   * What discovery says about `destination`: the cached Resolution (synchronously) while it is
   * valid, else a promise of the next one. Never rejects.
   */
  resolve(destination: Destination): Resolution | Promise<Resolution> {
    const now = this.#now();
    let entry = this.#lookup(destination.host, destination.port);
    if (entry !== undefined) {
      this.#touch(entry);
      if (entry.value !== undefined && now < entry.expiresAt) {
        if (now >= entry.refreshAt && entry.inflight === undefined) void this.#fetch(entry);
        return entry.value;
      }
      if (entry.inflight !== undefined) return entry.inflight;
    } else {
      entry = this.#insert(destinationKey(destination.host), destination.port);
    }
    return this.#fetch(entry);
  }

  /** Drops every answer (in-flight fetches still answer their callers). */
  clear(): void {
    for (let e = this.#head; e !== undefined; e = e.next) e.live = false;
    this.#byHost.clear();
    this.#head = this.#tail = undefined;
    this.#size = 0;
  }

  #lookup(host: string, port: number): Entry | undefined {
    const hit = this.#byHost.get(host)?.get(port);
    if (hit !== undefined) return hit;
    // Not spelled as keyed (a bracketed or uppercase host): the canonical key, no alias kept.
    const key = destinationKey(host);
    return key === host ? undefined : this.#byHost.get(key)?.get(port);
  }

  #insert(host: string, port: number): Entry {
    while (this.#size >= this.#maxEntries && this.#head !== undefined) this.#remove(this.#head);
    const entry = new Entry(host, port);
    let ports = this.#byHost.get(host);
    if (ports === undefined) this.#byHost.set(host, (ports = new Map()));
    ports.set(port, entry);
    this.#size++;
    entry.prev = this.#tail;
    if (this.#tail !== undefined) this.#tail.next = entry;
    else this.#head = entry;
    this.#tail = entry;
    return entry;
  }

  #remove(entry: Entry): void {
    entry.live = false;
    const ports = this.#byHost.get(entry.host);
    if (ports !== undefined && ports.get(entry.port) === entry) {
      ports.delete(entry.port);
      if (ports.size === 0) this.#byHost.delete(entry.host);
    }
    if (entry.prev !== undefined) entry.prev.next = entry.next;
    else this.#head = entry.next;
    if (entry.next !== undefined) entry.next.prev = entry.prev;
    else this.#tail = entry.prev;
    entry.prev = entry.next = undefined;
    this.#size--;
  }

  #touch(entry: Entry): void {
    if (entry === this.#tail) return;
    // Unlink (it is not the tail, so it has a next)...
    if (entry.prev !== undefined) entry.prev.next = entry.next;
    else this.#head = entry.next;
    entry.next!.prev = entry.prev;
    // ...and append.
    entry.prev = this.#tail;
    entry.next = undefined;
    this.#tail!.next = entry;
    this.#tail = entry;
  }

  #fetch(entry: Entry): Promise<Resolution> {
    const started = this.#now();
    const destination: Destination = { host: entry.host, port: entry.port };
    let call: Promise<Exclude<Resolution, UnavailableResolution> | ResolveFailure>;
    try {
      call = this.#resolver.resolve(destination);
    } catch (err) {
      call = Promise.reject(err);
    }
    const inflight = call
      .catch((err: unknown): ResolveFailure => ({ kind: 'unavailable', reason: 'internal', detail: `the discovery client failed: ${(err as Error)?.message ?? String(err)}` }))
      .then((answer) => this.#settle(entry, answer, started));
    entry.inflight = inflight;
    return inflight;
  }

  #settle(entry: Entry, answer: Exclude<Resolution, UnavailableResolution> | ResolveFailure, started: number): Resolution {
    const now = this.#now();
    entry.inflight = undefined;
    const resolution: Resolution = answer.kind === 'unavailable' ? { ...answer, inCluster: this.#scope.contains(entry.host) } : answer;
    this.#onFetched?.({ host: entry.host, port: entry.port }, resolution, now - started);
    if (resolution.kind === 'unavailable' && entry.value !== undefined && entry.value.kind !== 'unavailable' && now < entry.expiresAt) {
      // A refresh ahead failed: the answer we hold stays until its own TTL (never longer), and
      // the next refresh waits out the backoff.
      entry.refreshAt = now + this.#ttl.unavailable;
      return entry.value;
    }
    if (!entry.live) return resolution;
    const ttl = this.#ttl[resolution.kind];
    entry.value = resolution;
    entry.expiresAt = now + ttl;
    entry.refreshAt = resolution.kind === 'unavailable' || resolution.kind === 'unknown' || this.#refreshAhead === 0 ? Infinity : now + ttl * (1 - this.#refreshAhead);
    return resolution;
  }
}
