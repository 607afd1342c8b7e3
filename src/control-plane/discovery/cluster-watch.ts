import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { Agent, request } from 'undici';
import { Backoff } from '../../data-plane/identity/sources/backoff.ts';
import type { MeshView } from './mesh-view.ts';
import { endpointSliceRecord, objectKey, podRecord, serviceRecord } from './objects.ts';

/**
 * List + watch of the three resources discovery needs, over plain HTTPS to the API server
 * with the identity service's own credential (the same URL, CA file and token file as
 * TokenReview: MESHLET_KUBERNETES_API_URL / _CA_FILE / _TOKEN_FILE; the token is re-read for
 * every request, kubelet rotates it).
 *
 * Per resource, the client-go reflector's loop without client-go:
 *   1. LIST (pages of 500, `limit`/`continue`), hand the whole set to the view (replace: what is
 *      absent is deleted), remember the list's resourceVersion;
 *   2. WATCH from it (`watch=1`, `allowWatchBookmarks=true`, `timeoutSeconds` 4–5 min, one JSON
 *      event per line over the chunked response); ADDED/MODIFIED upsert, DELETED delete,
 *      BOOKMARK only moves the resourceVersion;
 *   3. the server ends the watch (timeout) → watch again from the last resourceVersion;
 *      `410 Gone` (as the HTTP status or as an ERROR event: the version was compacted away) →
 *      LIST again at once; any other failure → back off (1 s doubling to 30 s, jitter) and LIST.
 *
 * `fresh()` is what the Resolve service asks before answering: every resource listed once,
 * and no watch down for longer than `maxStalenessMs`. Answers from an older view could say
 * "unmeshed" about a Service that has meanwhile been meshed: past that, Resolve refuses
 * (UNAVAILABLE) and the sidecar applies its fail-closed rule (docs/discovery.md).
 */
export type WatchedResource = 'pods' | 'services' | 'endpointslices';

export const WATCHED_RESOURCES: readonly WatchedResource[] = ['pods', 'services', 'endpointslices'];

export type WatchRestartReason = 'expired' | 'error' | 'closed';

export const WATCH_RESTART_REASONS: readonly WatchRestartReason[] = ['expired', 'error', 'closed'];

export interface ClusterWatchMetrics {
  objects(resource: WatchedResource, count: number): void;
  restart(resource: WatchedResource, reason: WatchRestartReason): void;
}

export const noClusterWatchMetrics: ClusterWatchMetrics = Object.freeze({ objects() {}, restart() {} });

export interface ClusterWatchOptions {
  apiServerUrl: string;
  caPem: string;
  tokenPath: string;
  view: MeshView;
  /** How long a watch may stay down before answers count as stale. */
  maxStalenessMs: number;
  metrics?: ClusterWatchMetrics;
  logger?: Logger;
  /** Test hooks. */
  backoff?: { initialMs: number; maxMs: number };
  now?: () => number;
}

const PATHS: Record<WatchedResource, string> = {
  pods: '/api/v1/pods',
  services: '/api/v1/services',
  endpointslices: '/apis/discovery.k8s.io/v1/endpointslices',
};

/** A single watch event line longer than this is refused (a Pod is at most ~1.5 MB in etcd). */
const MAX_LINE_BYTES = 4 * 1024 * 1024;
const MAX_LIST_PAGE_BYTES = 64 * 1024 * 1024;
const REQUEST_TIMEOUT_MS = 30_000;

/** The resourceVersion asked for is gone (410): list again. */
export class GoneError extends Error {}

export class ClusterWatch {
  readonly #opts: ClusterWatchOptions;
  readonly #agent: Agent;
  readonly #abort = new AbortController();
  readonly #metrics: ClusterWatchMetrics;
  readonly #now: () => number;
  readonly #state = new Map<WatchedResource, { listed: boolean; connected: boolean; downSince: number }>();
  readonly #loops: Promise<void>[] = [];
  readonly #syncedWaiters: (() => void)[] = [];

  constructor(options: ClusterWatchOptions) {
    this.#opts = options;
    this.#agent = new Agent({ connect: { ca: options.caPem }, connections: 8, keepAliveTimeout: 30_000 });
    this.#metrics = options.metrics ?? noClusterWatchMetrics;
    this.#now = options.now ?? (() => performance.now());
    for (const r of WATCHED_RESOURCES) this.#state.set(r, { listed: false, connected: false, downSince: this.#now() });
  }

  start(): void {
    for (const r of WATCHED_RESOURCES) this.#loops.push(this.#run(r));
  }

  /** Every resource has been listed at least once. */
  get synced(): boolean {
    return [...this.#state.values()].every((s) => s.listed);
  }

  /** Resolves when synced (or never, if the API server never answers). */
  whenSynced(): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve) => this.#syncedWaiters.push(resolve));
  }

  /** Whether answers may be given now, and if not, why. */
  fresh(): { ok: true } | { ok: false; reason: 'not_synced' | 'stale'; detail: string } {
    const now = this.#now();
    for (const [r, s] of this.#state) {
      if (!s.listed) return { ok: false, reason: 'not_synced', detail: `${r} not listed yet` };
      if (!s.connected && now - s.downSince > this.#opts.maxStalenessMs) {
        return { ok: false, reason: 'stale', detail: `the ${r} watch has been down for ${Math.round((now - s.downSince) / 1000)} s` };
      }
    }
    return { ok: true };
  }

  async close(): Promise<void> {
    this.#abort.abort();
    await Promise.allSettled(this.#loops);
    await this.#agent.close();
  }

  async #run(resource: WatchedResource): Promise<void> {
    const backoff = new Backoff({ initialMs: this.#opts.backoff?.initialMs ?? 1_000, maxMs: this.#opts.backoff?.maxMs ?? 30_000, factor: 2, jitter: 0.2 });
    const state = this.#state.get(resource)!;
    let version: string | undefined;
    while (!this.#abort.signal.aborted) {
      try {
        if (version === undefined) {
          version = await this.#list(resource);
          state.listed = true;
          // A fresh list is as good as a live watch until the watch below opens (or fails).
          if (!state.connected) state.downSince = this.#now();
          if (this.synced) for (const w of this.#syncedWaiters.splice(0)) w();
        }
        const opened = this.#now();
        version = await this.#watch(resource, version, () => {
          state.connected = true;
        });
        this.#metrics.restart(resource, 'closed');
        // A watch the server ends at once, again and again (a proxy in the way), must not spin.
        if (this.#now() - opened < 1_000) await sleep(backoff.next(), this.#abort.signal);
        else backoff.reset();
      } catch (err) {
        if (this.#abort.signal.aborted) break;
        if (state.connected) state.downSince = this.#now();
        state.connected = false;
        if (err instanceof GoneError) {
          this.#metrics.restart(resource, 'expired');
          this.#opts.logger?.info({ event: 'discovery_watch_expired', resource }, `${resource}: resourceVersion too old; listing again`);
          version = undefined;
          continue;
        }
        this.#metrics.restart(resource, 'error');
        const delay = backoff.next();
        this.#opts.logger?.warn({ event: 'discovery_watch_failed', resource, err: (err as Error).message, retryInMs: delay }, `${resource} watch failed; listing again after a pause`);
        version = undefined;
        await sleep(delay, this.#abort.signal);
        continue;
      }
      // The server ended the watch normally: reconnect from where it left off.
      if (state.connected) state.downSince = this.#now();
      state.connected = false;
    }
  }

  async #headers(): Promise<Record<string, string>> {
    const token = (await readFile(this.#opts.tokenPath, 'utf8')).trim();
    return { authorization: `Bearer ${token}`, accept: 'application/json' };
  }

  #apply(resource: WatchedResource, type: 'upsert' | 'delete', object: unknown): void {
    const view = this.#opts.view;
    if (type === 'delete') {
      const key = objectKey(object);
      if (key === undefined) return;
      if (resource === 'pods') view.deletePod(key);
      else if (resource === 'services') view.deleteService(key);
      else view.deleteEndpointSlice(key);
    } else if (resource === 'pods') {
      const r = podRecord(object);
      if (r) view.upsertPod(r);
    } else if (resource === 'services') {
      const r = serviceRecord(object);
      if (r) view.upsertService(r);
    } else {
      const r = endpointSliceRecord(object);
      if (r) view.upsertEndpointSlice(r);
    }
    this.#metrics.objects(resource, view.counts[resource]);
  }

  async #list(resource: WatchedResource): Promise<string> {
    const items: unknown[] = [];
    let cont = '';
    let version = '';
    do {
      const url = new URL(PATHS[resource], this.#opts.apiServerUrl);
      url.searchParams.set('limit', '500');
      if (cont) url.searchParams.set('continue', cont);
      const res = await request(url, { dispatcher: this.#agent, headers: await this.#headers(), signal: this.#abort.signal, headersTimeout: REQUEST_TIMEOUT_MS, bodyTimeout: REQUEST_TIMEOUT_MS });
      const text = await readCapped(res.body, MAX_LIST_PAGE_BYTES);
      if (res.statusCode === 410) throw new GoneError('continue token expired');
      if (res.statusCode !== 200) throw new Error(`LIST ${url.pathname} answered HTTP ${res.statusCode}: ${text.slice(0, 200)}`);
      const page = JSON.parse(text) as { metadata?: { resourceVersion?: string; continue?: string }; items?: unknown[] };
      // Project each page right away: the full objects of a big cluster are never all held at once.
      for (const item of page.items ?? []) items.push(project(resource, item));
      version = page.metadata?.resourceVersion ?? '';
      cont = page.metadata?.continue ?? '';
    } while (cont !== '');
    const view = this.#opts.view;
    const present = items.filter((i) => i !== undefined);
    if (resource === 'pods') view.replacePods(present as never);
    else if (resource === 'services') view.replaceServices(present as never);
    else view.replaceEndpointSlices(present as never);
    this.#metrics.objects(resource, view.counts[resource]);
    this.#opts.logger?.info({ event: 'discovery_listed', resource, count: present.length, resourceVersion: version }, `listed ${resource}`);
    return version;
  }

  /** Watches until the server ends the stream; returns the last resourceVersion seen. */
  async #watch(resource: WatchedResource, from: string, onOpen: () => void): Promise<string> {
    const url = new URL(PATHS[resource], this.#opts.apiServerUrl);
    return watchEvents(url, from, { dispatcher: this.#agent, headers: await this.#headers(), signal: this.#abort.signal }, onOpen, (type, object) => this.#apply(resource, type, object));
  }
}

/**
 * One WATCH of `url` from resourceVersion `from` (`watch=1`, bookmarks, a server timeout of 4-5
 * min spread at random), one JSON event per line: ADDED/MODIFIED are `upsert`, DELETED `delete`,
 * BOOKMARK only moves the version; `410 Gone` (status or ERROR event) throws GoneError, any other
 * failure an Error. Returns the last resourceVersion seen when the server ends the stream.
 * `onEvent` may return a promise: the stream is not read further until it settles.
 */
export async function watchEvents(
  url: URL,
  from: string,
  http: { dispatcher: Agent; headers: Record<string, string>; signal: AbortSignal },
  onOpen: () => void,
  onEvent: (type: 'upsert' | 'delete', object: unknown) => void | Promise<void>,
): Promise<string> {
  url.searchParams.set('watch', '1');
  url.searchParams.set('resourceVersion', from);
  url.searchParams.set('allowWatchBookmarks', 'true');
  // Spread reconnections of the watches (and of several replicas) over a minute.
  url.searchParams.set('timeoutSeconds', String(240 + Math.floor(Math.random() * 60)));
  const res = await request(url, {
    ...http,
    headersTimeout: REQUEST_TIMEOUT_MS,
    // Bookmarks arrive about once a minute; silence for this long means a dead connection.
    bodyTimeout: 330_000,
  });
  if (res.statusCode !== 200) {
    const text = await readCapped(res.body, 64 * 1024).catch(() => '');
    if (res.statusCode === 410) throw new GoneError(text);
    throw new Error(`WATCH ${url.pathname} answered HTTP ${res.statusCode}: ${statusMessage(text)}`);
  }
  onOpen();
  let version = from;
  let buffered = '';
  for await (const chunk of res.body) {
    buffered += (chunk as Buffer).toString('utf8');
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl).trim();
      buffered = buffered.slice(nl + 1);
      if (line === '') continue;
      const event = JSON.parse(line) as { type?: string; object?: { metadata?: { resourceVersion?: string }; code?: number; message?: string } };
      const object = event.object;
      if (event.type === 'ERROR') {
        if (object?.code === 410) throw new GoneError(object.message ?? 'gone');
        throw new Error(`watch error event: ${object?.message ?? JSON.stringify(object).slice(0, 200)}`);
      }
      let applied: void | Promise<void> = undefined;
      if (event.type === 'ADDED' || event.type === 'MODIFIED') applied = onEvent('upsert', object);
      else if (event.type === 'DELETED') applied = onEvent('delete', object);
      else if (event.type !== 'BOOKMARK') continue;
      if (applied !== undefined) await applied;
      version = object?.metadata?.resourceVersion ?? version;
    }
    if (buffered.length > MAX_LINE_BYTES) throw new Error(`a watch event is longer than ${MAX_LINE_BYTES} bytes`);
  }
  return version;
}

/** The message of a Kubernetes Status body, or the start of whatever came. */
export function statusMessage(text: string): string {
  try {
    const status = JSON.parse(text) as { message?: unknown };
    if (typeof status.message === 'string') return status.message.slice(0, 200);
  } catch {
    // not JSON
  }
  return text.slice(0, 200);
}

function project(resource: WatchedResource, item: unknown): unknown {
  return resource === 'pods' ? podRecord(item) : resource === 'services' ? serviceRecord(item) : endpointSliceRecord(item);
}

/** A response body as text, refused past `max` bytes. */
export async function readCapped(body: AsyncIterable<Buffer>, max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > max) throw new Error(`response larger than ${max} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
