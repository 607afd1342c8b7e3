import { watch, type FSWatcher } from 'node:fs';

/**
 * Watches a directory that kubelet manages as a ConfigMap/Secret/projected volume and calls
 * `onChange` after its content may have changed.
 *
 * Kubelet's atomic writer (pkg/volume/util/atomic_writer.go) writes a new `..<timestamp>`
 * directory, then renames a fresh `..data` symlink over the old one; each key is a symlink
 * through `..data`. So the right thing is to watch the DIRECTORY (not the files: their
 * inodes never change) and re-read by path. fs.watch can miss events on some filesystems
 * (network mounts, overlay quirks), so a slow poll of the caller's choosing backs it up;
 * bursts of events are coalesced into one call.
 */
export interface MountedDirWatcherOptions {
  /** Coalesce a burst of events into one call after this quiet time. */
  debounceMs?: number;
  /** Safety poll interval; 0 disables polling. */
  pollMs?: number;
}

export class MountedDirWatcher {
  #watcher: FSWatcher | undefined;
  #debounce: NodeJS.Timeout | undefined;
  #poll: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #dir: string;
  readonly #onChange: () => void;
  readonly #debounceMs: number;

  constructor(dir: string, onChange: () => void, options: MountedDirWatcherOptions = {}) {
    this.#dir = dir;
    this.#onChange = onChange;
    this.#debounceMs = options.debounceMs ?? 50;
    const pollMs = options.pollMs ?? 5_000;
    this.#arm();
    if (pollMs > 0) {
      this.#poll = setInterval(() => this.#fire(), pollMs);
      this.#poll.unref();
    }
  }

  #arm(): void {
    try {
      this.#watcher = watch(this.#dir, { persistent: false }, () => this.#schedule());
      this.#watcher.on('error', () => {
        // The directory itself went away (volume unmounted, or a test removed it): keep
        // polling, and try to watch again on the next poll.
        this.#watcher?.close();
        this.#watcher = undefined;
        this.#schedule();
      });
    } catch {
      this.#watcher = undefined;
    }
  }

  #schedule(): void {
    if (this.#closed) return;
    clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => this.#fire(), this.#debounceMs);
    this.#debounce.unref();
  }

  #fire(): void {
    if (this.#closed) return;
    if (!this.#watcher) this.#arm();
    this.#onChange();
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#debounce);
    clearInterval(this.#poll);
    this.#watcher?.close();
  }
}
// Note for callers: onChange is a hint, not a diff. The safety poll calls it even when nothing
// changed, so compare what you read (a hash or the bytes) with what you hold before acting.
