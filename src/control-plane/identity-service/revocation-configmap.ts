import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { Agent, request } from 'undici';
import { Backoff } from '../../data-plane/identity/sources/backoff.ts';
import { RevocationListError } from '../../data-plane/identity/revocation/errors.ts';
import { MAX_REVOCATION_LIST_BYTES, parseRevocationListInSlices, type RevocationSet } from '../../data-plane/identity/revocation/revocation-list.ts';
import { FollowedRevocationList } from '../../data-plane/identity/revocation/followed-revocation-list.ts';
// The key `meshlet identity revoke --configmap` writes.
import { REVOCATION_CONFIGMAP_KEY } from '../../data-plane/identity/revocation/revocation-list-edit.ts';
import { isK8sName, isNamespaceName } from '../../common/config/env.ts';
import { GoneError, readCapped, sleep, statusMessage, watchEvents } from '../discovery/cluster-watch.ts';

/** Which ConfigMap (MESHLET_IDENTITY_REVOCATION_LIST's API form, its namespace resolved). */
export interface RevocationConfigMapRef {
  readonly namespace: string;
  readonly name: string;
}

export interface RevocationConfigMapOptions extends RevocationConfigMapRef {
  /** The API server, its CA and the service's own token file (re-read for every request): TokenReview's. */
  readonly apiServerUrl: string;
  readonly caPem: string;
  readonly tokenPath: string;
  readonly logger?: Logger;
  /** Test hook: the pause after a failed list or watch (default 1 s doubling to 30 s). */
  readonly backoff?: { initialMs: number; maxMs: number };
}

/** A ConfigMap as the API sends it: only what is read. */
interface ConfigMapObject {
  metadata?: { name?: string; resourceVersion?: string };
  data?: Record<string, unknown>;
}

/** A ConfigMap in JSON is its data escaped: a 1 MiB list can take somewhat more; a page past this is refused. */
const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;
const REQUEST_TIMEOUT_MS = 30_000;

/**
 * The identity service's revocation list read from a ConfigMap through the API server (list,
 * then watch of that one object: `fieldSelector=metadata.name=NAME`, so RBAC can grant it by
 * `resourceNames`) instead of from a mounted volume: a change is seen as the API server
 * commits it, not on kubelet's next sync of the volume (60-90 s). The list is the key
 * `revocations.json`; the rules are those of the mounted file (RevocationListFile), one by one:
 *
 *  - at start, no ConfigMap or no key: the empty list (`absent`); a list that appears later is
 *    applied. At start, a key that is not a valid list, or an API server that does not answer
 *    (or refuses: RBAC), throws — the process must not issue to identities it cannot tell are
 *    revoked;
 *  - later, a malformed or oversized list, the key or the ConfigMap deleted, or the API server
 *    unreachable: the last good list stays in force, reported once per change (`rejected`);
 *  - the same bytes as the list in force change nothing.
 *
 * The watch loop is ClusterWatch's (docs/discovery.md): the server ends a watch every 4-5 min
 * and it is opened again from the last resourceVersion; `410 Gone` lists again at once; any
 * other failure lists again after a back-off (1 s doubling to 30 s, jitter).
 */
export class RevocationListConfigMap extends FollowedRevocationList {
  /** How logs name the list: `configmap meshlet-system/meshlet-revocations`. */
  readonly source: string;
  readonly #opts: RevocationConfigMapOptions;
  readonly #agent: Agent;
  readonly #abort = new AbortController();
  /** A valid list has been in force (a missing key is then a rejection, not `absent`). */
  #hadList = false;
  /** What the last rejection was about: the same problem is reported once. */
  #lastProblem: string | undefined;
  #loop: Promise<void> | undefined;
  #agentClosed = false;

  constructor(options: RevocationConfigMapOptions) {
    super();
    this.#opts = options;
    this.source = `configmap ${options.namespace}/${options.name}`;
    this.#agent = new Agent({ connect: { ca: options.caPem }, connections: 2, keepAliveTimeout: 30_000 });
  }

  /** Reads the ConfigMap once and starts watching it; throws RevocationListError when it cannot be used at start. */
  async start(): Promise<RevocationSet> {
    let first: { version: string; object: ConfigMapObject | null };
    try {
      first = await this.#list();
    } catch (err) {
      await this.#closeAgent();
      throw new RevocationListError('REVOCATION_LIST_UNREADABLE', `cannot read ${this.source}: ${(err as Error).message}`, { cause: err });
    }
    const read = await this.#read(first.object);
    if (read instanceof RevocationListError) {
      await this.#closeAgent();
      throw read;
    }
    // ('unchanged' cannot happen before a list is in force.)
    if (read === 'missing' || read === 'unchanged') this.absent();
    else this.#accept(read);
    this.#loop = this.#run(first.version);
    return this.current();
  }

  close(): void {
    this.#abort.abort();
    this.forgetListeners();
    void (this.#loop ?? Promise.resolve()).catch(() => undefined).then(() => this.#closeAgent());
  }

  /** Once: a start that failed has closed it already. */
  async #closeAgent(): Promise<void> {
    if (this.#agentClosed) return;
    this.#agentClosed = true;
    await this.#agent.close().catch(() => undefined);
  }

  async #run(from: string): Promise<void> {
    const backoff = new Backoff({ initialMs: this.#opts.backoff?.initialMs ?? 1_000, maxMs: this.#opts.backoff?.maxMs ?? 30_000, factor: 2, jitter: 0.2 });
    let version: string | undefined = from;
    while (!this.#abort.signal.aborted) {
      try {
        if (version === undefined) {
          const listed = await this.#list();
          await this.#apply(listed.object);
          version = listed.version;
        }
        const opened = performance.now();
        version = await this.#watch(version);
        // A watch the server ends at once, again and again (a proxy in the way), must not spin.
        if (performance.now() - opened < 1_000) await sleep(backoff.next(), this.#abort.signal);
        else backoff.reset();
      } catch (err) {
        if (this.#abort.signal.aborted) break;
        version = undefined;
        if (err instanceof GoneError) continue;
        const delay = backoff.next();
        this.#reject(new RevocationListError('REVOCATION_LIST_UNREADABLE', `cannot read ${this.source} (retrying in ${Math.round(delay / 1000)} s; the last good list stays in force): ${(err as Error).message}`), 'api');
        await sleep(delay, this.#abort.signal);
      }
    }
  }

  /** One ConfigMap state (null: there is none): applied, kept, or refused. */
  async #apply(object: ConfigMapObject | null): Promise<void> {
    const read = await this.#read(object);
    if (this.#abort.signal.aborted) return;
    if (read === 'unchanged') {
      this.#lastProblem = undefined;
      return;
    }
    if (read === 'missing') {
      if (!this.#hadList) {
        // Still no list, and an answer: a later outage is a new problem, reported.
        this.#lastProblem = undefined;
        return;
      }
      // Gone after a list was in force: a deleted ConfigMap or key must not re-admit everyone.
      this.#reject(new RevocationListError('REVOCATION_LIST_MISSING', `${this.source} has no key ${REVOCATION_CONFIGMAP_KEY}; the last good list (${this.current().size} revoked) stays in force — write an empty list to re-admit everyone`), 'missing');
      return;
    }
    if (read instanceof RevocationListError) {
      this.#reject(read, `invalid:${read.message}`);
      return;
    }
    this.#accept(read);
  }

  /** The list the ConfigMap holds, 'missing', 'unchanged' (the bytes in force), or why it cannot be used. */
  async #read(object: ConfigMapObject | null): Promise<RevocationSet | RevocationListError | 'missing' | 'unchanged'> {
    const text = object?.data?.[REVOCATION_CONFIGMAP_KEY];
    if (text === undefined) return 'missing';
    if (typeof text !== 'string') return new RevocationListError('REVOCATION_LIST_INVALID', `${this.source}: data.${REVOCATION_CONFIGMAP_KEY} is not a string`);
    const bytes = Buffer.from(text, 'utf8');
    if (bytes.length > MAX_REVOCATION_LIST_BYTES) return new RevocationListError('REVOCATION_LIST_TOO_LARGE', `${this.source}: the list is ${bytes.length} bytes; at most ${MAX_REVOCATION_LIST_BYTES} are accepted`);
    if (this.#hadList && createHash('sha256').update(bytes).digest('hex') === this.current().digest) return 'unchanged';
    try {
      return await parseRevocationListInSlices(bytes);
    } catch (err) {
      if (err instanceof RevocationListError) return new RevocationListError(err.code, `${this.source}: ${err.message}`);
      throw err;
    }
  }

  #accept(next: RevocationSet): void {
    this.#lastProblem = undefined;
    this.#hadList = true;
    this.use(next);
  }

  #reject(error: RevocationListError, problem: string): void {
    if (problem === this.#lastProblem) return;
    this.#lastProblem = problem;
    this.rejected(error);
  }

  async #headers(): Promise<Record<string, string>> {
    const token = (await readFile(this.#opts.tokenPath, 'utf8')).trim();
    return { authorization: `Bearer ${token}`, accept: 'application/json' };
  }

  #url(): URL {
    const url = new URL(`/api/v1/namespaces/${encodeURIComponent(this.#opts.namespace)}/configmaps`, this.#opts.apiServerUrl);
    url.searchParams.set('fieldSelector', `metadata.name=${this.#opts.name}`);
    return url;
  }

  async #list(): Promise<{ version: string; object: ConfigMapObject | null }> {
    const url = this.#url();
    const res = await request(url, { dispatcher: this.#agent, headers: await this.#headers(), signal: this.#abort.signal, headersTimeout: REQUEST_TIMEOUT_MS, bodyTimeout: REQUEST_TIMEOUT_MS });
    const text = await readCapped(res.body, MAX_RESPONSE_BYTES);
    if (res.statusCode !== 200) throw new Error(`LIST ${url.pathname}?${url.searchParams} answered HTTP ${res.statusCode}: ${statusMessage(text)}`);
    const list = JSON.parse(text) as { metadata?: { resourceVersion?: string }; items?: ConfigMapObject[] };
    return { version: list.metadata?.resourceVersion ?? '', object: list.items?.find((i) => i.metadata?.name === this.#opts.name) ?? null };
  }

  /** Watches until the server ends the stream; returns the last resourceVersion seen. */
  async #watch(from: string): Promise<string> {
    return watchEvents(this.#url(), from, { dispatcher: this.#agent, headers: await this.#headers(), signal: this.#abort.signal }, noop, (type, object) => this.#apply(type === 'delete' ? null : ((object ?? null) as ConfigMapObject | null)));
  }
}

function noop(): void {
  // Nothing to mark when the watch opens: a rejection is cleared by the next good state.
}

/**
 * `configmap:NAME` (the identity service's own namespace) or `configmap:NAMESPACE/NAME` parsed
 * (namespace null for the first), or null when `value` is neither.
 */
export function revocationConfigMapRef(value: string): { namespace: string | null; name: string } | null {
  if (!value.startsWith('configmap:')) return null;
  const parts = value.slice('configmap:'.length).split('/');
  const name = parts.at(-1)!;
  const namespace = parts.length === 2 ? parts[0]! : null;
  if (parts.length > 2 || !isK8sName(name) || (namespace !== null && !isNamespaceName(namespace))) return null;
  return { namespace, name };
}
