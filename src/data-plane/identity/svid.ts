import type { SpiffeId } from '../../common/identity/spiffe-id.ts';

/**
 * An X.509-SVID the workload holds: its key and its certificate chain (leaf first, then
 * intermediates up to, not including, the root), plus the validity of the leaf.
 */
export interface X509Svid {
  readonly spiffeId: SpiffeId;
  /** PEM, leaf first, then intermediates. */
  readonly certChainPem: string;
  /** PKCS#8 PEM. Lives in memory (or an in-memory emptyDir), never in an image. */
  readonly privateKeyPem: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/**
 * Trust bundles by trust domain: the CA certificates (PEM, concatenated) that anchor the
 * SVIDs of that trust domain. A peer is validated only against the bundle of ITS OWN trust
 * domain (X.509-SVID spec §5); a trust domain with no entry is untrusted.
 */
export type TrustBundles = ReadonlyMap<string, string>;

/** What an identity source hands to the TLS layer: one consistent snapshot. */
export interface IdentitySnapshot {
  readonly svid: X509Svid;
  readonly bundles: TrustBundles;
}

export type SnapshotListener = (snapshot: IdentitySnapshot) => void;

/**
 * The one interface the sidecar uses to get its identity, whatever the source
 * (meshlet CA, SPIFFE Workload API, mounted files). Like go-spiffe's X509Source.
 */
export interface SvidSource {
  /** A short name for logs and metrics: "meshlet-ca" | "workload-api" | "files". */
  readonly kind: string;
  /** Resolves with the first snapshot; rejects if none can be had (with a coded error). */
  start(): Promise<IdentitySnapshot>;
  /** The latest snapshot, or undefined before start() resolved. */
  current(): IdentitySnapshot | undefined;
  /** Called on every rotation (a new snapshot); returns an unsubscribe function. */
  onUpdate(listener: SnapshotListener): () => void;
  /** Called when fetching/renewing fails; the source keeps the current snapshot. Returns unsubscribe. */
  onError(listener: (err: Error) => void): () => void;
  close(): Promise<void>;
}
