import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MountedDirWatcher } from '../../common/volume/mounted-dir-watcher.ts';
import { compilePolicy, type CompiledPolicy, type CompileOptions } from './compile.ts';
import type { PolicyMetrics } from './metrics.ts';
import { parsePolicyOffThread, type OffThreadParseOptions } from './parse-off-thread.ts';
import type { ClientMeshDefault, DefaultPolicy, PolicyError, WorkloadSelf } from './types.ts';

export type ReloadResult = 'ok' | 'invalid' | 'unreadable' | 'deleted' | 'unchanged';

export interface ReloadEvent {
  readonly result: ReloadResult;
  /** sha256 (hex) of the bytes read; null when nothing could be read. */
  readonly hash: string | null;
  /** apiVersion of the policy applied (result ok). */
  readonly version?: string;
  /** Every error of an invalid policy, or the read error of an unreadable one. */
  readonly errors?: readonly PolicyError[];
  readonly warnings?: readonly PolicyError[];
  /** Where the document was parsed (parse-off-thread.ts), when it was. */
  readonly parsedIn?: 'inline' | 'worker' | 'inline-fallback';
  /** The server of the policy that applies to this workload after the reload (null: the default). */
  readonly server: string | null;
}

export interface PolicyStoreOptions {
  /** The mounted ConfigMap directory. */
  dir: string;
  /** The ConfigMap key holding the policy; default policy.yaml. */
  key?: string;
  self: WorkloadSelf;
  meshDefault: DefaultPolicy;
  /** MESHLET_DEFAULT_CLIENT_POLICY: the client side when no client selects the workload; default `allow`. */
  meshClientDefault?: ClientMeshDefault;
  metrics?: PolicyMetrics;
  /** MountedDirWatcher options; the poll is the safety net for missed fs events. */
  debounceMs?: number;
  pollMs?: number;
  /** When a document is parsed in a worker thread, its heap cap and deadline (defaults: OFF_THREAD_PARSE_DEFAULTS). */
  parse?: OffThreadParseOptions;
}

export const DEFAULT_POLICY_KEY = 'policy.yaml';

/**
 * Holds the compiled policy the sidecar enforces and keeps it current with the mounted
 * ConfigMap. Rules (docs/policy.md "Reload"):
 * - current() is synchronous and cheap: the proxy calls it per request, so a new policy
 *   reaches connections that are already open;
 * - a valid change replaces the policy; an invalid or unreadable one never does (the last
 *   good policy stays, the event carries the errors, the metric counts it);
 * - a deleted key keeps the last good policy: an accidental `kubectl delete configmap` must
 *   not silently open (or close) a service; with no policy ever loaded, the mesh default applies;
 * - the same bytes seen again produce `unchanged` (the watcher's safety poll is a hint, not a diff);
 * - a reload never throws and never stalls the data path: a large document is parsed in a
 *   worker thread (parse-off-thread.ts), every stage is bounded by POLICY_LIMITS, and anything
 *   unexpected becomes an `invalid` event with code POLICY_INTERNAL.
 */
export class PolicyStore {
  readonly #options: PolicyStoreOptions;
  readonly #file: string;
  #current: CompiledPolicy;
  #currentHash: string | null = null;
  #lastSeen = 'initial';
  #watcher: MountedDirWatcher | undefined;
  #listeners = new Set<(event: ReloadEvent) => void>();
  #running: Promise<ReloadEvent> | undefined;
  #again = false;
  #closed = false;
  /** Makes each transient failure's token unique (Date.now() can repeat within a millisecond). */
  #attempts = 0;

  constructor(options: PolicyStoreOptions) {
    this.#options = options;
    this.#file = join(options.dir, options.key ?? DEFAULT_POLICY_KEY);
    this.#current = compilePolicy(null, this.#compileOptions());
  }

  /** The server side and the client side compile from the same document with the same options. */
  #compileOptions(): CompileOptions {
    const o = this.#options;
    return { self: o.self, meshDefault: o.meshDefault, ...(o.meshClientDefault !== undefined ? { meshClientDefault: o.meshClientDefault } : {}) };
  }

  /** Loads the policy once and starts watching. Resolves with the first reload's event. */
  async start(): Promise<ReloadEvent> {
    const first = await this.reload();
    if (!this.#closed) {
      this.#watcher = new MountedDirWatcher(this.#options.dir, () => void this.reload(), {
        ...(this.#options.debounceMs !== undefined ? { debounceMs: this.#options.debounceMs } : {}),
        ...(this.#options.pollMs !== undefined ? { pollMs: this.#options.pollMs } : {}),
      });
    }
    return first;
  }

  current(): CompiledPolicy {
    return this.#current;
  }

  /** sha256 of the policy in force, or null while the default applies. */
  currentHash(): string | null {
    return this.#currentHash;
  }

  onReload(listener: (event: ReloadEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Re-reads the key now. Concurrent calls are coalesced: one read runs at a time, plus at most one more. */
  reload(): Promise<ReloadEvent> {
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    const run = async (): Promise<ReloadEvent> => {
      let event: ReloadEvent;
      do {
        this.#again = false;
        event = await this.#reloadOnce().catch((err: unknown) => this.#internalError(err));
        this.#emit(event);
      } while (this.#again && !this.#closed);
      return event;
    };
    this.#running = run().finally(() => (this.#running = undefined));
    return this.#running;
  }

  async #reloadOnce(): Promise<ReloadEvent> {
    const server = () => this.#current.server;
    let bytes: Buffer;
    try {
      bytes = await readFile(this.#file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'EUNKNOWN';
      if (code === 'ENOENT' || code === 'ENOTDIR') {
        return this.#seen('deleted', { result: 'deleted', hash: null, server: server() });
      }
      const error: PolicyError = { severity: 'error', code: 'POLICY_UNREADABLE', message: `cannot read ${this.#file}: ${code}`, path: '', source: this.#file };
      return this.#seen(`unreadable:${code}`, { result: 'unreadable', hash: null, errors: [error], server: server() });
    }
    const hash = createHash('sha256').update(bytes).digest('hex');
    if (hash === this.#currentHash) return this.#seen(`ok:${hash}`, { result: 'unchanged', hash, server: server() });
    // The same refused bytes again (the safety poll): not parsed again, so a hostile policy
    // costs its parse once, not once per poll.
    if (this.#lastSeen === `invalid:${hash}`) return { result: 'unchanged', hash, server: server() };
    const { result: parsed, ran, transient } = await parsePolicyOffThread(bytes.toString('utf8'), this.#file, this.#options.parse);
    if (!parsed.ok) {
      // A missed deadline may not repeat: a token of its own lets the next poll try again.
      const token = transient ? `invalid:${hash}:${++this.#attempts}` : `invalid:${hash}`;
      return this.#seen(token, { result: 'invalid', hash, errors: parsed.errors, parsedIn: ran, server: server() });
    }
    // The route caps bound this (about 7 ms for 1,000 routes): it stays on the main thread
    // because a compiled policy is closures, which cannot cross from a worker.
    const compiled = compilePolicy(parsed.policy, this.#compileOptions());
    if (this.#closed) return { result: 'unchanged', hash, server: server() };
    this.#current = compiled;
    this.#currentHash = hash;
    this.#lastSeen = `ok:${hash}`;
    return { result: 'ok', hash, version: parsed.policy.apiVersion, warnings: parsed.warnings, parsedIn: ran, server: this.#current.server };
  }

  /** A bug on the way: reported as an invalid policy (the last good one stays), never thrown. */
  #internalError(err: unknown): ReloadEvent {
    const error: PolicyError = { severity: 'error', code: 'POLICY_INTERNAL', message: `reloading ${this.#file} failed: ${(err as Error)?.message ?? String(err)}`, path: '', source: this.#file };
    this.#lastSeen = `internal:${++this.#attempts}`;
    return { result: 'invalid', hash: null, errors: [error], server: this.#current.server };
  }

  /** A state seen on the previous read too is reported as unchanged, so a poll never re-logs it. */
  #seen(token: string, event: ReloadEvent): ReloadEvent {
    if (token === this.#lastSeen) return { result: 'unchanged', hash: event.hash, server: event.server };
    this.#lastSeen = token;
    return event;
  }

  #emit(event: ReloadEvent): void {
    this.#options.metrics?.recordReload(event);
    for (const l of this.#listeners) {
      try {
        l(event);
      } catch {
        // A faulty listener must not stop reloads or the other listeners.
      }
    }
  }

  close(): void {
    this.#closed = true;
    this.#watcher?.close();
    this.#listeners.clear();
  }
}
