import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { IdentitySnapshot, SnapshotListener, SvidSource } from '../svid.ts';
import { SourceListeners } from '../sources/source-listeners.ts';
import { FederatedBundles, type FederatedBundlesOptions } from './federated-bundles.ts';
import { FederationMetrics } from './federation-metrics.ts';

/**
 * An identity source plus the federated trust domains' bundles from the federation directory
 * (docs/identity-sources.md "Federation"), for the `files` and `meshlet-ca` sources, which
 * bring only their own trust domain's bundle.
 *
 * It is the inner source as the TLS layer sees it: the same SVID, its bundles, and beside them
 * one bundle per federated trust domain. Any change — the inner source rotating, or a domain
 * added, updated or removed in the directory — is a new snapshot through onUpdate, the path
 * every rotation takes: MeshTls builds a new SecureContext for new handshakes (whose CA store
 * and per-trust-domain verification then include, or no longer include, that domain) and
 * empties its session cache. A bundle from the inner source is never replaced: the own trust
 * domain's bundle always comes from the identity source.
 */
export class FederatedSvidSource implements SvidSource {
  readonly #inner: SvidSource;
  readonly #federation: FederatedBundles;
  readonly #listeners = new SourceListeners();
  readonly #detach: (() => void)[] = [];
  /** The merged snapshot, and what it was made from (rebuilt only when either changes). */
  #merged: IdentitySnapshot | undefined;
  #mergedFrom: { inner: IdentitySnapshot; federated: ReadonlyMap<string, string> } | undefined;
  /** Until start() resolves, changes are not updates: start() hands out the first snapshot, as every source does. */
  #started = false;

  constructor(inner: SvidSource, federation: FederatedBundles) {
    this.#inner = inner;
    this.#federation = federation;
    this.#detach.push(inner.onUpdate(() => this.#emit()));
    this.#detach.push(federation.onChange(() => this.#emit()));
  }

  get kind(): string {
    return this.#inner.kind;
  }

  /** The federation directory is read first, so the first handshakes already know its domains. */
  async start(): Promise<IdentitySnapshot> {
    await this.#federation.start();
    await this.#inner.start();
    this.#started = true;
    return this.current()!;
  }

  current(): IdentitySnapshot | undefined {
    const inner = this.#inner.current();
    if (inner === undefined) return undefined;
    const federated = this.#federation.current();
    if (this.#mergedFrom?.inner !== inner || this.#mergedFrom.federated !== federated) {
      this.#merged = merge(inner, federated);
      this.#mergedFrom = { inner, federated };
    }
    return this.#merged;
  }

  onUpdate(listener: SnapshotListener): () => void {
    return this.#listeners.onUpdate(listener);
  }

  /**
   * The inner source's errors, and those of an update listener that threw on a federation
   * change (the TLS layer could not load the new bundles: it keeps the old ones). A refused
   * federation file is not an identity error: it is counted and logged on its own.
   */
  onError(listener: (err: Error) => void): () => void {
    const offInner = this.#inner.onError(listener);
    const offOwn = this.#listeners.onError(listener);
    return () => {
      offInner();
      offOwn();
    };
  }

  async close(): Promise<void> {
    for (const detach of this.#detach.splice(0)) detach();
    this.#federation.close();
    this.#listeners.clear();
    await this.#inner.close();
  }

  #emit(): void {
    if (!this.#started) return;
    this.#listeners.emitUpdate(this.current()!);
  }
}

/** The inner snapshot's bundles, then every federated one for a trust domain it has no bundle for. */
function merge(inner: IdentitySnapshot, federated: ReadonlyMap<string, string>): IdentitySnapshot {
  if (federated.size === 0) return inner;
  const bundles = new Map(inner.bundles);
  for (const [td, pem] of federated) if (!bundles.has(td)) bundles.set(td, pem);
  return Object.freeze({ svid: inner.svid, bundles });
}

export interface FederationSettings extends Omit<FederatedBundlesOptions, 'dir'> {
  /** MESHLET_FEDERATION_BUNDLES; '' = no federation. */
  dir: string;
  registry: Registry;
  logger: Logger;
}

/**
 * The sidecar's source with federation when MESHLET_FEDERATION_BUNDLES names a directory; the
 * inner source itself otherwise (no watcher, no metrics, nothing on any path). Every refused
 * file is counted in meshlet_federation_bundle_errors_total{reason} and logged once (until its
 * content changes) as `federation_bundle_rejected`; every change as `federation_updated`.
 */
export function withFederation(inner: SvidSource, settings: FederationSettings): SvidSource {
  if (settings.dir === '') return inner;
  const { registry, logger, ...options } = settings;
  const metrics = new FederationMetrics(registry);
  const federation = new FederatedBundles(options);
  federation.onRejected((err) => {
    metrics.rejected(err.reason);
    logger.warn(
      { event: 'federation_bundle_rejected', file: err.file, trustDomain: err.trustDomain ?? null, reason: err.reason, code: err.code, detail: err.message, kept: err.trustDomain !== undefined && federation.loaded().has(err.trustDomain) },
      'federated bundle refused; the trust domain keeps its last good bundle',
    );
  });
  federation.onChange((change) => {
    metrics.loaded(change.trustDomains.length);
    logger.info({ event: 'federation_updated', dir: settings.dir, ...change }, 'federated trust domains changed');
  });
  return new FederatedSvidSource(inner, federation);
}
