import { Worker } from 'node:worker_threads';
import { POLICY_LIMITS } from './limits.ts';
import { policyFailure, parsePolicy } from './parse.ts';
import type { ParseResult } from './types.ts';

/**
 * Parsing is the expensive part of a reload: `yaml` takes about 0.5-1 µs and 150-200 B of
 * heap per byte, so a policy at the 256 KiB cap would hold the sidecar's event loop — and
 * every request on it — for 150-400 ms. A document of at least `minBytes` is parsed in a
 * worker thread instead, with its own heap cap (an out-of-memory there refuses the policy
 * instead of getting the pod OOM-killed) and a deadline. The main thread only receives the
 * result (a structured clone) and compiles it, which the route caps keep to a few ms.
 *
 * Smaller documents (nearly every real policy) parse inline: a worker costs about 40 MB of
 * RSS while it lives and 150-400 ms to start, more than parsing 16 KiB does.
 */
export interface OffThreadParseOptions {
  /** Documents of at least this many bytes go to a worker; default 16 KiB (0 = always). */
  minBytes?: number;
  /** The worker's old-generation heap cap; default 64 MiB (a 256 KiB policy peaks near 45 MiB). */
  maxHeapMb?: number;
  /** Deadline for the worker, start-up included; default 10 s. */
  timeoutMs?: number;
}

export const OFF_THREAD_PARSE_DEFAULTS = Object.freeze({ minBytes: 16 * 1024, maxHeapMb: 64, timeoutMs: 10_000 });

export interface OffThreadParseResult {
  result: ParseResult;
  /** Where the parse ran; 'inline-fallback' when the worker could not start (then parsed inline). */
  ran: 'inline' | 'worker' | 'inline-fallback';
  /** A refusal that may not repeat with the same bytes (the deadline passed on a loaded node). */
  transient: boolean;
}

// The worker is a sibling module: .ts in the sources, .js in the built artifact (scripts/build-dist.mjs).
const WORKER_URL = new URL(`./parse-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);

export function parsePolicyOffThread(text: string, source: string | undefined, options: OffThreadParseOptions = {}): Promise<OffThreadParseResult> {
  const minBytes = options.minBytes ?? OFF_THREAD_PARSE_DEFAULTS.minBytes;
  // Over the cap, parsePolicy refuses at once: no worker needed (length in chars <= bytes).
  if (text.length < minBytes || text.length > POLICY_LIMITS.maxDocumentBytes) return Promise.resolve({ result: parsePolicy(text, source), ran: 'inline', transient: false });
  const maxHeapMb = options.maxHeapMb ?? OFF_THREAD_PARSE_DEFAULTS.maxHeapMb;
  const timeoutMs = options.timeoutMs ?? OFF_THREAD_PARSE_DEFAULTS.timeoutMs;
  return new Promise((resolve) => {
    let settled = false;
    let worker: Worker;
    const finish = (r: OffThreadParseResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void worker?.terminate();
      resolve(r);
    };
    const timer = setTimeout(() => {
      finish({ result: policyFailure(source, 'POLICY_TOO_COMPLEX', `parsing the policy took longer than ${timeoutMs} ms`), ran: 'worker', transient: true });
    }, timeoutMs);
    try {
      worker = new Worker(WORKER_URL, {
        workerData: { text, source },
        resourceLimits: { maxOldGenerationSizeMb: maxHeapMb, maxYoungGenerationSizeMb: 8, stackSizeMb: 4 },
      });
    } catch {
      finish({ result: parsePolicy(text, source), ran: 'inline-fallback', transient: false });
      return;
    }
    worker.unref();
    worker.once('message', (result: ParseResult) => finish({ result, ran: 'worker', transient: false }));
    worker.once('error', (err: Error & { code?: string }) => {
      if (err.code === 'ERR_WORKER_OUT_OF_MEMORY') {
        finish({ result: policyFailure(source, 'POLICY_TOO_COMPLEX', `parsing the policy needs more than the ${maxHeapMb} MiB parser heap`), ran: 'worker', transient: false });
      } else if (!settled) {
        // The worker could not run at all (parsePolicy itself never throws): parse inline
        // rather than refuse every large policy.
        finish({ result: parsePolicy(text, source), ran: 'inline-fallback', transient: false });
      }
    });
    // An exit before any message or error: the worker could not run (parse inline, as above).
    worker.once('exit', () => {
      if (!settled) finish({ result: parsePolicy(text, source), ran: 'inline-fallback', transient: false });
    });
  });
}
