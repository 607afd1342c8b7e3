import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { MountedDirWatcher } from '../../../common/volume/mounted-dir-watcher.ts';
import { RevocationListError } from './errors.ts';
import { FollowedRevocationList } from './followed-revocation-list.ts';
import { MAX_REVOCATION_LIST_BYTES, parseRevocationListInSlices, type RevocationSet } from './revocation-list.ts';

/** How often the file is looked at besides the directory watch (docs/revocation.md "Reloads"). */
export const REVOCATION_POLL_MS = 1_000;

export type { RevocationReload } from './followed-revocation-list.ts';

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
export class RevocationListFile extends FollowedRevocationList {
  readonly path: string;
  /** The stat signature of the file last looked at ('missing' when it was absent). */
  #signature: string | undefined;
  #watcher: MountedDirWatcher | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #closed = false;
  readonly #pollMs: number;
  readonly #debounceMs: number;

  constructor(options: RevocationListFileOptions) {
    super();
    this.path = options.path;
    this.#pollMs = options.pollMs ?? REVOCATION_POLL_MS;
    this.#debounceMs = options.debounceMs ?? 50;
  }

  /**
   * Loads the file and starts following it. No file yet: the empty list (result `absent`). A
   * file that is there but not a valid list: throws its RevocationListError — the process must
   * not start admitting peers it cannot tell are revoked.
   */
  async start(): Promise<RevocationSet> {
    const first = await this.#read();
    if (first instanceof RevocationListError) throw first;
    if (first === 'missing' || first === 'unchanged') this.absent();
    else this.use(first);
    this.#watcher = new MountedDirWatcher(dirname(this.path), () => this.check(), { pollMs: this.#pollMs, debounceMs: this.#debounceMs });
    return this.current();
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
    this.forgetListeners();
  }

  async #look(): Promise<void> {
    const before = this.#signature;
    const next = await this.#read(before);
    if (next === 'unchanged' || this.#closed) return;
    if (next === 'missing') {
      if (before === 'missing' || before === undefined) return;
      // Gone after a list was in force: a deleted ConfigMap key must not re-admit everyone.
      this.rejected(new RevocationListError('REVOCATION_LIST_MISSING', `${this.path} is gone; the last good list (${this.current().size} revoked) stays in force — write an empty list to re-admit everyone`));
      return;
    }
    if (next instanceof RevocationListError) {
      this.rejected(next);
      return;
    }
    if (next.digest === this.current().digest) return;
    this.use(next);
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
    if (createHash('sha256').update(bytes).digest('hex') === this.current().digest) return 'unchanged';
    try {
      return await parseRevocationListInSlices(bytes);
    } catch (err) {
      if (err instanceof RevocationListError) return new RevocationListError(err.code, `${this.path}: ${err.message}`);
      throw err;
    }
  }
}
