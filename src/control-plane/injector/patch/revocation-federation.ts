import type { IdentitySourceKind } from '../../../data-plane/sidecar/sidecar-env.ts';
import { REVOCATION_LIST_FILE, VOLUMES } from './pod-layout.ts';

/**
 * Where an injected sidecar learns which peers are revoked (docs/revocation.md) and which foreign
 * trust domains it trusts (docs/identity-sources.md "Federation"), by identity source. One pure
 * function that both the volumes (volumes.ts) and the environment (containers.ts) are built
 * from, so a sidecar is never told to read a mount it does not have.
 *
 * - Revocation, meshlet-ca: the list the identity service enforces, polled over the channel the
 *   source already has (`MESHLET_REVOCATION_LIST=meshlet-ca`): one list for the whole mesh, a
 *   change within about 6 s, no per-namespace ConfigMap and no kubelet sync delay. The sidecar
 *   refuses to start when the identity service has no list, so deploy/ configures one.
 * - Revocation, files and workload-api: their SVIDs do not come from meshlet's identity service,
 *   which therefore cannot speak for them; they read the namespace's optional `meshlet-revocations`
 *   ConfigMap (absent: nobody revoked).
 * - Federation, files and meshlet-ca: the namespace's optional `meshlet-federation` ConfigMap
 *   (absent: an empty directory, no foreign domain trusted). Never workload-api: SPIRE delivers
 *   federated bundles itself and the sidecar refuses the setting with that source.
 */
export interface RevocationFederationPlan {
  /** The value of MESHLET_REVOCATION_LIST. */
  revocationList: typeof CA_REVOCATION_LIST | typeof REVOCATION_LIST_FILE;
  /** Whether the meshlet-revocations ConfigMap is mounted (a path above needs it). */
  mountRevocations: boolean;
  /** The value of MESHLET_FEDERATION_BUNDLES (the mount path), or null: not set, not mounted. */
  federationBundles: string | null;
}

/** MESHLET_REVOCATION_LIST's value for "ask the identity service" (sidecar-env.ts parses it). */
export const CA_REVOCATION_LIST = 'meshlet-ca';

export function planRevocationFederation(identitySource: IdentitySourceKind): RevocationFederationPlan {
  const fromCa = identitySource === 'meshlet-ca';
  return {
    revocationList: fromCa ? CA_REVOCATION_LIST : REVOCATION_LIST_FILE,
    mountRevocations: !fromCa,
    federationBundles: identitySource === 'workload-api' ? null : VOLUMES.federation.mountPath,
  };
}
