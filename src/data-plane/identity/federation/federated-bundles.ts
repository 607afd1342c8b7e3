import { MountedDirWatcher } from '../../../common/volume/mounted-dir-watcher.ts';
import { FederationError, judgeBundleDirectory, readBundleDirectory, type FederatedBundle } from './bundle-directory.ts';

/**
 * The federated trust domains' bundles, kept in step with the federation directory.
 *
 * Kubelet updates a ConfigMap volume by swapping its `..data` symlink; the directory is
 * watched (fs.watch) and also polled, every `pollMs` (default 2 s), because a watch can miss
 * events (network filesystems, overlay quirks) and a missed swap would leave a removed domain
 * trusted. A poll that finds the same bytes does nothing. Each change is judged file by file
 * (bundle-directory.ts): good files apply, a bad one is reported once (until its content
 * changes) and its domain keeps its last good bundle.
 */
export interface FederatedBundlesOptions {
  /** The mounted directory (MESHLET_FEDERATION_BUNDLES). */
  dir: string;
  /** The mesh's own trust domain: never taken from the directory. */
  ownTrustDomain: string;
  /** Safety poll of the directory. Default 2 s. */
  pollMs?: number;
  /** Quiet time that coalesces a burst of file events. Default 50 ms. */
  debounceMs?: number;
}

export const FEDERATION_DEFAULTS = Object.freeze({ pollMs: 2_000, debounceMs: 50 });

/** What changed in one update: trust domains added, removed, and whose bundle changed. */
export interface FederationChange {
  readonly trustDomains: readonly string[];
  readonly added: readonly string[];
  readonly removed: readonly string[];
  readonly updated: readonly string[];
}

export class FederatedBundles {
  readonly #opts: Required<FederatedBundlesOptions>;
  #loaded: ReadonlyMap<string, FederatedBundle> = new Map();
  /** The PEMs by trust domain, one object per change (what the merged snapshots hold). */
  #pems: ReadonlyMap<string, string> = new Map();
  #fingerprint: string | undefined;
  /** Per file, the last refusal reported (its bytes' digest and the message): a poll that refuses the same bytes again says nothing. */
  #reported = new Map<string, string>();
  #watcher: MountedDirWatcher | undefined;
  #scanning = false;
  #scanAgain = false;
  #closed = false;
  readonly #changeListeners = new Set<(change: FederationChange) => void>();
  readonly #rejectListeners = new Set<(err: FederationError) => void>();

  constructor(options: FederatedBundlesOptions) {
    this.#opts = { pollMs: FEDERATION_DEFAULTS.pollMs, debounceMs: FEDERATION_DEFAULTS.debounceMs, ...options };
  }

  /** Reads the directory once (its refusals reported like any later ones), then follows it. */
  async start(): Promise<void> {
    if (this.#watcher !== undefined || this.#closed) return;
    await this.#scan();
    if (this.#closed) return;
    this.#watcher = new MountedDirWatcher(this.#opts.dir, () => void this.#scan(), { pollMs: this.#opts.pollMs, debounceMs: this.#opts.debounceMs });
  }

  /** Trust domain -> PEM of every federated bundle trusted now. */
  current(): ReadonlyMap<string, string> {
    return this.#pems;
  }

  /** The loaded bundles (with sequence and file), for inspection. */
  loaded(): ReadonlyMap<string, FederatedBundle> {
    return this.#loaded;
  }

  onChange(listener: (change: FederationChange) => void): () => void {
    this.#changeListeners.add(listener);
    return () => this.#changeListeners.delete(listener);
  }

  onRejected(listener: (err: FederationError) => void): () => void {
    this.#rejectListeners.add(listener);
    return () => this.#rejectListeners.delete(listener);
  }

  close(): void {
    this.#closed = true;
    this.#watcher?.close();
    this.#watcher = undefined;
    this.#changeListeners.clear();
    this.#rejectListeners.clear();
  }

  /** Scans are serialised: a change during one asks for one more after it. */
  async #scan(): Promise<void> {
    if (this.#scanning) {
      this.#scanAgain = true;
      return;
    }
    this.#scanning = true;
    try {
      do {
        this.#scanAgain = false;
        await this.#scanOnce();
      } while (this.#scanAgain && !this.#closed);
    } finally {
      this.#scanning = false;
    }
  }

  async #scanOnce(): Promise<void> {
    let read;
    try {
      read = await readBundleDirectory(this.#opts.dir);
    } catch (err) {
      // The directory itself is unreadable: keep what is trusted (never replaced by nothing
      // because of an I/O error), and say so once until the error changes.
      this.#fingerprint = undefined;
      if (err instanceof FederationError) this.#reject([err], new Map());
      return;
    }
    if (this.#closed || read.fingerprint === this.#fingerprint) return;
    this.#fingerprint = read.fingerprint;
    const { bundles, rejected } = judgeBundleDirectory(read, this.#loaded, this.#opts.ownTrustDomain);
    // Files that no longer exist (or are good now) may be refused again later with the same bytes.
    const stillRefused = new Set(rejected.map((e) => e.file));
    for (const file of this.#reported.keys()) if (!stillRefused.has(file)) this.#reported.delete(file);
    this.#reject(rejected, new Map(read.files.map((f) => [f.path, f.digest])));
    this.#apply(bundles);
  }

  #reject(errors: readonly FederationError[], digests: ReadonlyMap<string, string>): void {
    for (const err of errors) {
      const seen = `${digests.get(err.file) ?? ''}\0${err.message}`;
      if (this.#reported.get(err.file) === seen) continue;
      this.#reported.set(err.file, seen);
      for (const listener of this.#rejectListeners) {
        try {
          listener(err);
        } catch {
          // A listener that throws must not stop the others or the watch.
        }
      }
    }
  }

  #apply(next: ReadonlyMap<string, FederatedBundle>): void {
    const previous = this.#loaded;
    const added = [...next.keys()].filter((td) => !previous.has(td));
    const removed = [...previous.keys()].filter((td) => !next.has(td));
    const updated = [...next.keys()].filter((td) => previous.has(td) && previous.get(td)!.pem !== next.get(td)!.pem);
    this.#loaded = next;
    if (added.length + removed.length + updated.length === 0) return;
    this.#pems = new Map([...next].map(([td, b]) => [td, b.pem]));
    const change: FederationChange = { trustDomains: [...next.keys()].sort(), added: added.sort(), removed: removed.sort(), updated: updated.sort() };
    for (const listener of this.#changeListeners) {
      try {
        listener(change);
      } catch {
        // As above: one listener's failure is not the watch's.
      }
    }
  }
}
