import { createHash } from 'node:crypto';
import { RevocationListError } from './errors.ts';
import { FollowedRevocationList } from './followed-revocation-list.ts';
import { parseRevocationListInSlices, RevocationSet } from './revocation-list.ts';

/** How often a sidecar asks the identity service for its list (docs/revocation.md). */
export const CA_REVOCATION_POLL_MS = 5_000;

/** What the feed needs of the meshlet-ca identity source (MeshletCaSource.fetchRevocations). */
export interface RevocationsFetcher {
  fetchRevocations(knownSha256: string): Promise<{ enabled: boolean; sha256: string; list: Buffer }>;
}

/**
 * The revocation list as the identity service publishes it (MESHLET_REVOCATION_LIST=meshlet-ca,
 * docs/revocation.md "Learning the list from the identity service"): polled every
 * CA_REVOCATION_POLL_MS over the meshlet-ca source's channel, offering the SHA-256 of the list
 * held so an unchanged list costs a few bytes. Same reload events as RevocationListFile, same
 * fail-closed rules: an unreachable service, a service without a list, a list that does not
 * parse or does not match its hash — the last good list stays in force, reported once until
 * the next success. At start, any failure refuses the start (nothing good to keep yet).
 */
export class CaRevocationFeed extends FollowedRevocationList {
  readonly source = 'meshlet-ca';
  readonly #fetcher: RevocationsFetcher;
  readonly #pollMs: number;
  #timer: NodeJS.Timeout | undefined;
  /** The last refusal reported (code and message), so a lasting problem is one line, not one per poll. */
  #reported: string | undefined;
  #closed = false;
  /** Whether the service ever published a list: once it has, its disappearance keeps the last good one and is reported. */
  #hadList = false;

  constructor(options: { fetcher: RevocationsFetcher; pollMs?: number }) {
    super();
    this.#fetcher = options.fetcher;
    this.#pollMs = options.pollMs ?? CA_REVOCATION_POLL_MS;
  }

  /** The first list (empty when the service publishes none); throws RevocationListError when the service cannot answer or its list is bad. Then polls. */
  async start(): Promise<RevocationSet> {
    const first = await this.#fetch();
    if (first instanceof RevocationListError) throw first;
    if (first === 'disabled') {
      // The service publishes no list (MESHLET_IDENTITY_REVOCATION_LIST unset there): nobody is
      // revoked, as for a mounted list whose file does not exist yet — a pod must not fail to
      // start over a feature the operator has not turned on. Polled on: a list, once published, applies.
      this.absent();
      this.#schedule();
      return this.current();
    }
    this.#hadList = true;
    if (first !== 'unchanged') this.use(first);
    this.#schedule();
    return this.current();
  }

  /** One poll now (the timer calls it; tests may too). */
  async poll(): Promise<void> {
    const next = await this.#fetch();
    if (this.#closed) return;
    // Still no list published, and none ever was: nothing changed, nothing to report.
    if (next === 'disabled' && !this.#hadList) return;
    if (next instanceof RevocationListError || next === 'disabled') {
      const error = next instanceof RevocationListError ? next : new RevocationListError('REVOCATION_LIST_MISSING', 'the identity service has no revocation list configured any more; the last good list stays in force');
      const key = `${error.code} ${error.message}`;
      if (this.#reported === key) return;
      this.#reported = key;
      this.rejected(error);
      return;
    }
    this.#reported = undefined;
    if (next === 'unchanged') return;
    this.#hadList = true;
    if (next.digest === this.current().digest) return;
    this.use(next);
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.forgetListeners();
  }

  #schedule(): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => {
      void this.poll().finally(() => this.#schedule());
    }, this.#pollMs);
    this.#timer.unref();
  }

  async #fetch(): Promise<RevocationSet | RevocationListError | 'disabled' | 'unchanged'> {
    let res;
    try {
      const held = this.current();
      res = await this.#fetcher.fetchRevocations(held === RevocationSet.EMPTY ? '' : held.digest);
    } catch (err) {
      return new RevocationListError('REVOCATION_LIST_UNREADABLE', `cannot get the revocation list from the identity service: ${(err as Error).message}`, { cause: err });
    }
    if (!res.enabled) return 'disabled';
    if (res.list.length === 0) {
      // Nothing sent: the service says we hold its list. Anything else is a confused answer.
      if (res.sha256 === this.current().digest) return 'unchanged';
      return new RevocationListError('REVOCATION_LIST_INVALID', `the identity service sent no list for sha256 ${res.sha256}, which is not the list held here`);
    }
    const sha256 = createHash('sha256').update(res.list).digest('hex');
    if (sha256 !== res.sha256) return new RevocationListError('REVOCATION_LIST_INVALID', `the identity service's list does not match its sha256 (${res.sha256}, got ${sha256})`);
    try {
      return await parseRevocationListInSlices(res.list);
    } catch (err) {
      if (err instanceof RevocationListError) return new RevocationListError(err.code, `the identity service's list: ${err.message}`);
      throw err;
    }
  }
}
