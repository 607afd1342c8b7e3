import { readFile, readlink } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import { MeshletError } from '../../../common/errors/meshlet-error.ts';
import { parsePrivateKeyPem } from '../pem.ts';
import { parseSpiffeBundle } from '../trust-bundle.ts';
import type { IdentitySnapshot, SvidSource } from '../svid.ts';
import { MountedDirWatcher } from '../../../common/volume/mounted-dir-watcher.ts';
import { SourceListeners } from './source-listeners.ts';
import { buildSnapshot, sameSnapshot } from './svid-material.ts';

/**
 * An SvidSource that reads the SVID, its key and the trust bundle from mounted files: the
 * volume cert-manager's csi-driver-spiffe mounts (`tls.crt`, `tls.key`, `ca.crt`), or a
 * Secret holding the same keys (a cert-manager Certificate's Secret does).
 *
 * Both are written by kubelet's (or csi-lib's) atomic writer: a new `..<timestamp>` directory,
 * then `..data` swapped to it in one rename. The directory is watched (MountedDirWatcher), the
 * three files are re-read by path, and the set is taken only when `..data` did not move while
 * they were read, so a cert from one generation is never paired with a key from the next.
 * A set that is missing a file, does not parse, or whose key does not match its certificate
 * is an error event and never replaces the current snapshot.
 */
export class FilesSourceError extends MeshletError {
  constructor(code: FilesSourceErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
  }
}

export type FilesSourceErrorCode =
  /** One of the files does not exist (yet). */
  | 'FILES_SOURCE_MISSING_FILE'
  /** A file exists but cannot be read (permissions, a directory, I/O error). */
  | 'FILES_SOURCE_UNREADABLE'
  /** A PEM file holds a block that never ends or more BEGIN than END lines (half-written). */
  | 'FILES_SOURCE_CORRUPT_PEM'
  /** The files parse badly or do not belong together; the cause carries the precise code. */
  | 'FILES_SOURCE_INVALID'
  /** start() found no valid set within startTimeoutMs (cause: the last failure). */
  | 'FILES_SOURCE_START_TIMEOUT'
  /** start() after close(), or close() while start() was pending. */
  | 'FILES_SOURCE_CLOSED'
  /** An option has an impossible value (a timeout or interval that is not a number >= 0). */
  | 'FILES_SOURCE_BAD_OPTION';

export interface FilesSourceOptions {
  /** The mounted directory (MESHLET_SVID_DIR). Default /var/run/meshlet/svid. */
  dir?: string;
  /** SVID chain, PEM, leaf first. Relative to `dir` unless absolute. Default tls.crt. */
  certFile?: string;
  /** Private key, PEM (PKCS#8 "PRIVATE KEY" or SEC1 "EC PRIVATE KEY"). Default tls.key. */
  keyFile?: string;
  /** CA certificates of the SVID's trust domain: PEM, or a SPIFFE bundle (JSON). Default ca.crt. */
  bundleFile?: string;
  /** How long start() waits for a valid set, re-reading on every change. Default 15 s. */
  startTimeoutMs?: number;
  /** Safety poll of the watched directories (fs.watch can miss events). Default 5 s. */
  pollMs?: number;
  /** Quiet time that coalesces a burst of file events. Default 50 ms. */
  debounceMs?: number;
}

export const FILES_SOURCE_DEFAULTS = Object.freeze({
  dir: '/var/run/meshlet/svid',
  certFile: 'tls.crt',
  keyFile: 'tls.key',
  bundleFile: 'ca.crt',
  startTimeoutMs: 15_000,
  pollMs: 5_000,
  debounceMs: 50,
});

/** A swap landing during every one of this many consecutive reads means something is wrong; wait for the next event. */
const MAX_CONSECUTIVE_REREADS = 5;

export class FilesSource implements SvidSource {
  readonly kind = 'files';
  readonly #paths: { cert: string; key: string; bundle: string };
  readonly #dirs: string[];
  readonly #startTimeoutMs: number;
  readonly #watchOptions: { pollMs: number; debounceMs: number };
  readonly #listeners = new SourceListeners();
  #watchers: MountedDirWatcher[] = [];
  #startTimer: NodeJS.Timeout | undefined;
  #current: IdentitySnapshot | undefined;
  /** What was last read (content, or the failure): the safety poll re-reads unchanged files. */
  #lastSeen: string | undefined;
  #lastError: Error | undefined;
  #reading = false;
  #readAgain = false;
  #started: Promise<IdentitySnapshot> | undefined;
  #resolveStart: ((s: IdentitySnapshot) => void) | undefined;
  #rejectStart: ((err: Error) => void) | undefined;
  #closed = false;

  constructor(options: FilesSourceOptions = {}) {
    const dir = options.dir ?? FILES_SOURCE_DEFAULTS.dir;
    const at = (file: string) => (isAbsolute(file) ? file : join(dir, file));
    this.#paths = {
      cert: at(options.certFile ?? FILES_SOURCE_DEFAULTS.certFile),
      key: at(options.keyFile ?? FILES_SOURCE_DEFAULTS.keyFile),
      bundle: at(options.bundleFile ?? FILES_SOURCE_DEFAULTS.bundleFile),
    };
    this.#dirs = [...new Set(Object.values(this.#paths).map((p) => dirname(p)))];
    this.#startTimeoutMs = options.startTimeoutMs ?? FILES_SOURCE_DEFAULTS.startTimeoutMs;
    this.#watchOptions = { pollMs: options.pollMs ?? FILES_SOURCE_DEFAULTS.pollMs, debounceMs: options.debounceMs ?? FILES_SOURCE_DEFAULTS.debounceMs };
    const check = (name: string, value: number, min: number) => {
      if (!Number.isFinite(value) || value < min) throw new FilesSourceError('FILES_SOURCE_BAD_OPTION', `${name} must be a number >= ${min} (milliseconds), got ${value}`);
    };
    check('startTimeoutMs', this.#startTimeoutMs, 1);
    // pollMs 0 turns the safety poll off (MountedDirWatcher), leaving only fs.watch.
    check('pollMs', this.#watchOptions.pollMs, 0);
    check('debounceMs', this.#watchOptions.debounceMs, 0);
  }

  start(): Promise<IdentitySnapshot> {
    if (this.#started) return this.#started;
    if (this.#closed) return Promise.reject(new FilesSourceError('FILES_SOURCE_CLOSED', 'the files source is closed'));
    this.#started = new Promise<IdentitySnapshot>((resolve, reject) => {
      this.#resolveStart = resolve;
      this.#rejectStart = reject;
    });
    this.#startTimer = setTimeout(() => {
      const last = this.#lastError;
      this.#failStart(
        new FilesSourceError('FILES_SOURCE_START_TIMEOUT', `no valid SVID in ${this.#describe()} within ${this.#startTimeoutMs} ms${last ? `: ${last.message}` : ''}`, { cause: last }),
      );
    }, this.#startTimeoutMs);
    this.#watchers = this.#dirs.map((dir) => new MountedDirWatcher(dir, () => void this.#reload(), this.#watchOptions));
    void this.#reload();
    return this.#started;
  }

  current(): IdentitySnapshot | undefined {
    return this.#current;
  }

  onUpdate(listener: (snapshot: IdentitySnapshot) => void): () => void {
    return this.#listeners.onUpdate(listener);
  }

  onError(listener: (err: Error) => void): () => void {
    return this.#listeners.onError(listener);
  }

  async close(): Promise<void> {
    this.#failStart(new FilesSourceError('FILES_SOURCE_CLOSED', 'the files source was closed before a valid SVID was read'));
    this.#stop();
    this.#listeners.clear();
  }

  #describe(): string {
    const { cert, key, bundle } = this.#paths;
    return `${cert}, ${key}, ${bundle}`;
  }

  /** Reads are serialised: an event during a read asks for one more read after it. */
  async #reload(): Promise<void> {
    if (this.#reading) {
      this.#readAgain = true;
      return;
    }
    this.#reading = true;
    try {
      for (let i = 0; i < MAX_CONSECUTIVE_REREADS && !this.#closed; i++) {
        this.#readAgain = false;
        await this.#readOnce();
        if (!this.#readAgain) break;
      }
    } finally {
      this.#reading = false;
    }
  }

  async #readOnce(): Promise<void> {
    const generation = await this.#generation();
    let texts: string[];
    try {
      texts = await Promise.all([this.#paths.cert, this.#paths.key, this.#paths.bundle].map((p) => readFile(p, 'utf8')));
    } catch (err) {
      if ((await this.#generation()) !== generation) {
        this.#readAgain = true;
        return;
      }
      const e = err as NodeJS.ErrnoException;
      const seen = `error:${e.code}:${e.path}`;
      if (seen === this.#lastSeen) return;
      this.#lastSeen = seen;
      this.#report(
        e.code === 'ENOENT'
          ? new FilesSourceError('FILES_SOURCE_MISSING_FILE', `${e.path} does not exist`, { cause: err })
          : new FilesSourceError('FILES_SOURCE_UNREADABLE', `cannot read ${e.path ?? this.#describe()}: ${e.message}`, { cause: err }),
      );
      return;
    }
    // kubelet swapped `..data` while we read: the three texts may come from two generations.
    if ((await this.#generation()) !== generation) {
      this.#readAgain = true;
      return;
    }
    if (this.#closed) return;
    const [certText, keyText, bundleText] = texts as [string, string, string];
    const seen = `${certText}\0${keyText}\0${bundleText}`;
    if (seen === this.#lastSeen) return;
    this.#lastSeen = seen;

    let snapshot: IdentitySnapshot;
    try {
      assertWholePem(certText, this.#paths.cert);
      assertWholePem(keyText, this.#paths.key);
      // The bundle may also be a SPIFFE bundle document (JSON JWK Set), as SPIRE's
      // bundle endpoint and `spire-server bundle show -format spiffe` produce.
      const isSpiffeBundle = bundleText.trimStart().startsWith('{');
      if (!isSpiffeBundle) assertWholePem(bundleText, this.#paths.bundle);
      snapshot = buildSnapshot({
        chainPem: certText,
        key: parsePrivateKeyPem(keyText, this.#paths.key),
        bundlePem: isSpiffeBundle ? parseSpiffeBundle(bundleText).x509AuthoritiesPem : bundleText,
        what: this.#paths.cert,
      });
    } catch (err) {
      this.#report(
        err instanceof FilesSourceError
          ? err
          : new FilesSourceError('FILES_SOURCE_INVALID', `the SVID files in ${this.#describe()} are not usable: ${(err as Error).message}`, { cause: err }),
      );
      return;
    }
    if (sameSnapshot(this.#current, snapshot)) return;
    const first = this.#current === undefined;
    this.#current = snapshot;
    if (first && this.#resolveStart) {
      clearTimeout(this.#startTimer);
      const resolve = this.#resolveStart;
      this.#resolveStart = this.#rejectStart = undefined;
      resolve(snapshot);
    } else {
      this.#listeners.emitUpdate(snapshot);
    }
  }

  /** Where each watched directory's `..data` points ('' where there is none: a plain directory). */
  async #generation(): Promise<string> {
    const links = await Promise.all(this.#dirs.map((dir) => readlink(join(dir, '..data')).catch(() => '')));
    return links.join('\0');
  }

  #report(err: Error): void {
    this.#lastError = err;
    this.#listeners.emitError(err);
  }

  #failStart(err: Error): void {
    const reject = this.#rejectStart;
    if (!reject) return;
    this.#resolveStart = this.#rejectStart = undefined;
    // A source that never got going is useless: stop watching at once, so a caller that
    // forgets close() after a failed start() leaks nothing.
    this.#stop();
    reject(err);
  }

  #stop(): void {
    this.#closed = true;
    clearTimeout(this.#startTimer);
    for (const watcher of this.#watchers) watcher.close();
    this.#watchers = [];
  }
}

const PEM_BEGIN = /-----BEGIN [A-Z0-9 ]+-----/g;
const PEM_WELL_FORMED_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[A-Za-z0-9+/=\s]*-----END \1-----/g;

/**
 * A half-written or damaged PEM file ends inside a block or has junk in one. pem.ts's parsers
 * skip what they cannot match, which would quietly drop a truncated intermediate from a
 * chain, so the files source insists that every BEGIN line starts a well-formed block.
 */
function assertWholePem(text: string, path: string): void {
  const begins = text.match(PEM_BEGIN)?.length ?? 0;
  const whole = text.match(PEM_WELL_FORMED_BLOCK)?.length ?? 0;
  if (begins !== whole) {
    throw new FilesSourceError('FILES_SOURCE_CORRUPT_PEM', `${path}: ${begins - whole} of its ${begins} PEM blocks are truncated or not base64`);
  }
}
