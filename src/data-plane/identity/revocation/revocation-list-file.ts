import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { MountedDirWatcher } from '../../../common/volume/mounted-dir-watcher.ts';
import { RevocationListError } from './errors.ts';
import { MAX_REVOCATION_LIST_BYTES, parseRevocationListInSlices, RevocationSet } from './revocation-list.ts';

/** How often the file is looked at besides the directory watch (docs/revocation.md "Reloads"). */
export const REVOCATION_POLL_MS = 1_000;

/**
 * What one look at the file did:
 *  - `ok`: a new list is in force (`previous` -> `current`);
 *  - `absent`: at start, no file: nobody is revoked until one appears;
 *  - `rejected`: the file is malformed, too large, unreadable or gone; `current` is the last
 *    good list, still in force (fail closed), `error` says why.
 */
export interface RevocationReload {
  readonly result: 'ok' | 'absent' | 'rejected';
  readonly current: RevocationSet;
  readonly previous: RevocationSet;
  readonly error?: RevocationListError;
}

export interface RevocationListFileOptions {
  readonly path: string;
  /** The safety poll (stat, then read only when it changed); default REVOCATION_POLL_MS. */
  readonly pollMs?: number;
  /** Quiet time that coalesces a burst of directory events; default 50 ms. */
  readonly debounceMs?: number;
}

/**
 * A revocation list mounted as a file (a ConfigMap key, or any file), followed as it changes.
 *
 * kubelet updates a ConfigMap volume by renaming a new `..data` symlink over the old one, so
 * the DIRECTORY is watched (MountedDirWatcher), and a poll backs it up because fs.watch can miss
 * events. Each look is one stat (inode, size, mtime, ctime: the swap gives the key a new
 * inode); only when that changed is the file read (async, at most MAX_REVOCATION_LIST_BYTES),
 * parsed in slices that leave the event loop free in between (parseRevocationListInSlices);
 * a list whose SHA-256 is that of the list in force changes nothing. Looks never overlap.
 *
 * The list in force only ever changes to another VALID list: a malformed, oversized or
 * unreadable file, or the file disappearing, leaves the last good list in force (reported once
 * per change of the file, as `rejected`). To re-admit everyone, write an empty list.
 */
export class RevocationListFile {
  readonly path: string;
  #current = RevocationSet.EMPTY;
  /** The stat signature of the file last looked at ('missing' when it was absent). */
  #signature: string | undefined;
  #watcher: MountedDirWatcher | undefined;
  readonly #listeners = new Set<(reload: RevocationReload) => void>();
  #running: Promise<void> | undefined;
  #again = false;
  #closed = false;
  readonly #pollMs: number;
  readonly #debounceMs: number;

  constructor(options: RevocationListFileOptions) {
    this.path = options.path;
    this.#pollMs = options.pollMs ?? REVOCATION_POLL_MS;
    this.#debounceMs = options.debounceMs ?? 50;
  }

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

  /**
   * Loads the file and starts following it. No file yet: the empty list (result `absent`). A
   * file that is there but not a valid list: throws its RevocationListError — the process must
   * not start admitting peers it cannot tell are revoked.
   */
  async start(): Promise<RevocationSet> {
    const first = await this.#read();
    if (first instanceof RevocationListError) throw first;
    if (first === 'missing' || first === 'unchanged') {
      this.#emit({ result: 'absent', current: this.#current, previous: this.#current });
    } else {
      const previous = this.#current;
      this.#current = first;
      this.#emit({ result: 'ok', current: first, previous });
    }
    this.#watcher = new MountedDirWatcher(dirname(this.path), () => this.check(), { pollMs: this.#pollMs, debounceMs: this.#debounceMs });
    return this.#current;
  }

  /** Looks at the file now (the watcher and poll call it; tests may too). Resolves when the look is done. */
  check(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    this.#running = (async () => {
      do {
        this.#again = false;
        await this.#look();
      } while (this.#again && !this.#closed);
    })().finally(() => (this.#running = undefined));
    return this.#running;
  }

  close(): void {
    this.#closed = true;
    this.#watcher?.close();
    this.#listeners.clear();
  }

  async #look(): Promise<void> {
    const before = this.#signature;
    const next = await this.#read(before);
    if (next === 'unchanged' || this.#closed) return;
    const previous = this.#current;
    if (next === 'missing') {
      if (before === 'missing' || before === undefined) return;
      // Gone after a list was in force: a deleted ConfigMap key must not re-admit everyone.
      this.#emit({ result: 'rejected', current: previous, previous, error: new RevocationListError('REVOCATION_LIST_MISSING', `${this.path} is gone; the last good list (${previous.size} revoked) stays in force — write an empty list to re-admit everyone`) });
      return;
    }
    if (next instanceof RevocationListError) {
      this.#emit({ result: 'rejected', current: previous, previous, error: next });
      return;
    }
    if (next.digest === previous.digest) return;
    this.#current = next;
    this.#emit({ result: 'ok', current: next, previous });
  }

  /**
   * The list in the file, 'missing', 'unchanged' (same stat signature as `known`), or why it
   * cannot be used. Records the signature it saw, except after a failed read (tried again next look).
   */
  async #read(known?: string): Promise<RevocationSet | RevocationListError | 'missing' | 'unchanged'> {
    let info;
    try {
      info = await stat(this.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') {
        this.#signature = 'missing';
        return 'missing';
      }
      this.#signature = undefined;
      return new RevocationListError('REVOCATION_LIST_UNREADABLE', `cannot read ${this.path}: ${(err as Error).message}`, { cause: err });
    }
    const signature = `${info.dev}:${info.ino}:${info.size}:${info.mtimeMs}:${info.ctimeMs}`;
    if (known !== undefined && signature === known) return 'unchanged';
    if (!info.isFile()) {
      this.#signature = signature;
      return new RevocationListError('REVOCATION_LIST_UNREADABLE', `${this.path} is not a file`);
    }
    if (info.size > MAX_REVOCATION_LIST_BYTES) {
      this.#signature = signature;
      return new RevocationListError('REVOCATION_LIST_TOO_LARGE', `${this.path}: the list is ${info.size} bytes; at most ${MAX_REVOCATION_LIST_BYTES} are accepted`);
    }
    let bytes: Buffer;
    try {
      bytes = await readFile(this.path);
    } catch (err) {
      this.#signature = undefined;
      // Swapped away between stat and read: the next look (signature forgotten) reads the new file.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'unchanged';
      return new RevocationListError('REVOCATION_LIST_UNREADABLE', `cannot read ${this.path}: ${(err as Error).message}`, { cause: err });
    }
    this.#signature = signature;
    // The same bytes as the list in force (a touched or re-written file): nothing to parse.
    if (createHash('sha256').update(bytes).digest('hex') === this.#current.digest) return 'unchanged';
    try {
      return await parseRevocationListInSlices(bytes);
    } catch (err) {
      if (err instanceof RevocationListError) return new RevocationListError(err.code, `${this.path}: ${err.message}`);
      throw err;
    }
  }

  #emit(reload: RevocationReload): void {
    for (const listener of this.#listeners) listener(reload);
  }
}
