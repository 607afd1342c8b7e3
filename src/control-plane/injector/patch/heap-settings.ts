/**
 * The sidecar's V8 heap, sized from its container's memory limit (docs/performance.md,
 * "Memory"). Without these flags V8 sizes its heap from the machine, not the container: a
 * node with 24 GB lets the old generation of a 256Mi sidecar grow to gigabytes before it
 * collects hard, and the kernel OOM-kills the pod first. With them, V8 collects before the
 * limit and a runaway heap is a clean V8 out-of-memory exit that kubelet restarts.
 */

const MIB = 1024 * 1024;

/**
 * What the process needs besides the V8 heap: code, OpenSSL contexts and per-connection TLS
 * buffers, libuv, Node's own native state. Measured: a bare Node 24 that has loaded tls,
 * http and http2 is 54 MB resident with a 4 MB heap (docs/performance.md).
 */
export const NON_HEAP_RESERVE_MIB = 48;

/** Below this limit the sidecar cannot hold its code and a working heap: the injector refuses it. */
export const MIN_PROXY_MEMORY_LIMIT_MIB = 96;

export interface HeapSettings {
  /** --max-old-space-size, MiB. */
  maxOldSpaceMib: number;
  /** --max-semi-space-size, MiB (the young generation is 3 semi-spaces). */
  maxSemiSpaceMib: number;
}

/**
 * Old space gets what the limit leaves after the non-heap reserve and the young generation,
 * with a quarter of the limit kept as headroom (V8 may overshoot its limit while it collects;
 * the kernel does not wait). Semi-spaces stay small: a request's garbage dies young, and a
 * smaller young generation trades a few more (sub-millisecond) scavenges for tens of MB of
 * resident memory (bench figures in docs/performance.md).
 */
export function heapSettingsFor(memoryLimitBytes: number): HeapSettings {
  const limitMib = Math.floor(memoryLimitBytes / MIB);
  const maxSemiSpaceMib = limitMib >= 1024 ? 4 : limitMib >= 512 ? 2 : 1;
  const usable = Math.floor(limitMib * 0.75) - NON_HEAP_RESERVE_MIB - 3 * maxSemiSpaceMib;
  return { maxOldSpaceMib: Math.max(16, usable), maxSemiSpaceMib };
}

/**
 * The Node flags of the sidecar's command (the injector writes `node <flags> /app/bin/meshlet.js`,
 * the bench runs the same): the heap above, and one collector thread. V8 scavenges the young
 * generation in parallel by default; with a 1 MiB semi-space there is little to share, and
 * waking helper threads on a sidecar that gets a slice of a core costs more than it saves:
 * measured on the bench at 1,000 req/s, the average scavenge pause went from 0.71-0.77 ms to
 * 0.24 ms and pauses over 1 ms from 36-44 to 5 per run (docs/performance.md, "Tail latency").
 * `--single-threaded-gc` is not allowed in NODE_OPTIONS, hence the command line.
 */
export function proxyNodeFlags(memoryLimitBytes: number): string[] {
  const h = heapSettingsFor(memoryLimitBytes);
  return [`--max-old-space-size=${h.maxOldSpaceMib}`, `--max-semi-space-size=${h.maxSemiSpaceMib}`, '--single-threaded-gc'];
}

/**
 * glibc's malloc keeps up to 8 arenas per core, and every thread that allocates (the main
 * thread, V8's GC helpers, libuv's pool) may end up holding one, each with its own free
 * memory that the others cannot reuse. Two arenas: measured on the bench's new-connection and
 * gRPC scenarios, 5-8 MB less resident memory per sidecar at the same throughput.
 */
export const PROXY_MALLOC_ARENA_MAX = 2;

/** How the sidecar's process is started: Node's flags and the environment for its runtime. The injector and the bench both use it. */
export interface ProxyRuntime {
  nodeFlags: string[];
  env: Record<string, string>;
}

export function proxyRuntime(memoryLimitBytes: number): ProxyRuntime {
  return { nodeFlags: proxyNodeFlags(memoryLimitBytes), env: { MALLOC_ARENA_MAX: String(PROXY_MALLOC_ARENA_MAX) } };
}

const SUFFIX: Record<string, number> = {
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 1024,
  Mi: MIB,
  Gi: 1024 * MIB,
  Ti: 1024 ** 4,
  Pi: 1024 ** 5,
  Ei: 1024 ** 6,
};

/**
 * Kubernetes resource.Quantity: a decimal number with an optional exponent or SI or binary
 * suffix (`100m`, `0.5`, `128Mi`, `1G`, `1e3`). Groups: the number, the exponent, the suffix.
 */
export const QUANTITY = /^\+?(\d+(?:\.\d*)?|\.\d+)(?:[eE]([+-]?\d+)|(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei))?$/;

/**
 * Bytes of a memory quantity (`256Mi`, `0.5Gi`, `300M`, `1e9`); null for what is not one
 * (`m` is millibytes, never a sensible memory limit).
 */
export function memoryQuantityBytes(quantity: string): number | null {
  const m = QUANTITY.exec(quantity);
  if (!m) return null;
  const base = Number(m[1]) * 10 ** Number(m[2] ?? 0);
  const bytes = base * (SUFFIX[m[3] ?? ''] ?? NaN);
  return Number.isFinite(bytes) ? Math.floor(bytes) : null;
}
