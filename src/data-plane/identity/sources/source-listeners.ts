import type { IdentitySnapshot, SnapshotListener } from '../svid.ts';

/**
 * The onUpdate / onError bookkeeping every SvidSource needs. Listeners run inside stream and
 * file-watch callbacks of a long-running process, so one that throws must not take the
 * source (or the process) down: an update listener's exception is reported to the error
 * listeners, an error listener's exception is dropped.
 */
export class SourceListeners {
  readonly #update = new Set<SnapshotListener>();
  readonly #error = new Set<(err: Error) => void>();

  onUpdate(listener: SnapshotListener): () => void {
    this.#update.add(listener);
    return () => this.#update.delete(listener);
  }

  onError(listener: (err: Error) => void): () => void {
    this.#error.add(listener);
    return () => this.#error.delete(listener);
  }

  emitUpdate(snapshot: IdentitySnapshot): void {
    for (const listener of this.#update) {
      try {
        listener(snapshot);
      } catch (err) {
        this.emitError(err instanceof Error ? err : new Error(String(err)));
      }
    }
  }

  emitError(err: Error): void {
    for (const listener of this.#error) {
      try {
        listener(err);
      } catch {
        // An error listener that throws has nowhere left to report to.
      }
    }
  }

  clear(): void {
    this.#update.clear();
    this.#error.clear();
  }
}
