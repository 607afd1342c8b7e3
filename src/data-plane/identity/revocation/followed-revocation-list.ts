import type { RevocationListError } from './errors.ts';
import { RevocationSet } from './revocation-list.ts';

/**
 * What one look at a followed list did:
 *  - `ok`: a new list is in force (`previous` -> `current`);
 *  - `absent`: at start, no list: nobody is revoked until one appears;
 *  - `rejected`: the list is malformed, too large, unreadable or gone; `current` is the last
 *    good list, still in force (fail closed), `error` says why.
 */
export interface RevocationReload {
  readonly result: 'ok' | 'absent' | 'rejected';
  readonly current: RevocationSet;
  readonly previous: RevocationSet;
  readonly error?: RevocationListError;
}

/**
 * The part every source of the revocation list shares — a mounted file (RevocationListFile),
 * the identity service's feed (CaRevocationFeed), a ConfigMap through the API server
 * (RevocationListConfigMap): the list in force, the one-lookup `has`, and the reload events.
 * The list in force only ever changes through `use()`, to another valid list; a listener that
 * throws stops neither the source nor the other listeners.
 */
export abstract class FollowedRevocationList {
  #current = RevocationSet.EMPTY;
  readonly #listeners = new Set<(reload: RevocationReload) => void>();

  /** Loads the list and starts following it; throws RevocationListError when the process must not start on it. */
  abstract start(): Promise<RevocationSet>;

  /** Stops following; no more events. */
  abstract close(): void;

  /** The list in force. */
  current(): RevocationSet {
    return this.#current;
  }

  /** Whether `spiffeId` is revoked by the list in force: one Set lookup. */
  has(spiffeId: string): boolean {
    return this.#current.has(spiffeId);
  }

  /** Hears every look that changed something or refused something. Returns unsubscribe. */
  onReload(listener: (reload: RevocationReload) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** `next` is in force from now on (an `ok` event). */
  protected use(next: RevocationSet): void {
    const previous = this.#current;
    this.#current = next;
    this.#emit({ result: 'ok', current: next, previous });
  }

  /** At start, no list: nobody is revoked (an `absent` event). */
  protected absent(): void {
    this.#emit({ result: 'absent', current: this.#current, previous: this.#current });
  }

  /** A list refused: the last good one stays in force (a `rejected` event). */
  protected rejected(error: RevocationListError): void {
    this.#emit({ result: 'rejected', current: this.#current, previous: this.#current, error });
  }

  protected forgetListeners(): void {
    this.#listeners.clear();
  }

  #emit(reload: RevocationReload): void {
    for (const listener of this.#listeners) {
      try {
        listener(reload);
      } catch {
        // A faulty listener must not stop the source (nor reject its loop) or the other listeners.
      }
    }
  }
}
