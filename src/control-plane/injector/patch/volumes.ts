import type { IdentitySourceKind } from '../../../data-plane/sidecar/sidecar-env.ts';
import {
  CERT_MANAGER_SPIFFE_CSI_DRIVER,
  DEFAULT_POLICY_CONFIGMAP,
  FEDERATION_CONFIGMAP,
  REVOCATIONS_CONFIGMAP,
  SPIFFE_CSI_DRIVER,
  TOKEN_AUDIENCE,
  TOKEN_EXPIRATION_SECONDS,
  TRUST_BUNDLE_CONFIGMAP,
  TRUST_BUNDLE_KEY,
  VOLUMES,
  type MeshletVolume,
} from './pod-layout.ts';
import { planRevocationFederation } from './revocation-federation.ts';

export interface MeshletVolumePlan {
  volumes: Record<string, unknown>[];
  mounts: Record<string, unknown>[];
}

/**
 * The volumes behind the sidecar's mounts, and the mounts. The identity material depends on
 * the identity source: meshlet-ca proves the pod with a projected token and verifies with the
 * trust bundle ConfigMap; workload-api reads everything from the SPIRE agent socket; files
 * reads an SVID that csi-driver-spiffe keeps rotated. The revocation list and the federated
 * bundles follow the identity source too (revocation-federation.ts).
 */
export function meshletVolumes(policyConfigMap: string | undefined, identitySource: IdentitySourceKind): MeshletVolumePlan {
  const plan: MeshletVolumePlan = { volumes: [], mounts: [] };
  const add = (v: MeshletVolume, source: Record<string, unknown>, readOnly: boolean) => {
    plan.volumes.push({ name: v.name, ...source });
    plan.mounts.push({ name: v.name, mountPath: v.mountPath, ...(readOnly ? { readOnly: true } : {}) });
  };
  if (identitySource === 'meshlet-ca') {
    add(VOLUMES.token, { projected: { sources: [{ serviceAccountToken: { audience: TOKEN_AUDIENCE, expirationSeconds: TOKEN_EXPIRATION_SECONDS, path: 'token' } }] } }, true);
  }
  // Optional: a namespace without a policy gets the default policy, not a pod stuck in ContainerCreating.
  add(VOLUMES.policy, { configMap: { name: policyConfigMap ?? DEFAULT_POLICY_CONFIGMAP, optional: true } }, true);
  if (identitySource === 'meshlet-ca') {
    // Not optional: without roots the sidecar can verify nobody, so the pod should not start (the event names the ConfigMap).
    add(VOLUMES.trust, { configMap: { name: TRUST_BUNDLE_CONFIGMAP, items: [{ key: TRUST_BUNDLE_KEY, path: TRUST_BUNDLE_KEY }] } }, true);
  }
  if (identitySource === 'workload-api') add(VOLUMES.workloadApi, { csi: { driver: SPIFFE_CSI_DRIVER, readOnly: true } }, true);
  if (identitySource === 'files') add(VOLUMES.svidFiles, { csi: { driver: CERT_MANAGER_SPIFFE_CSI_DRIVER, readOnly: true } }, true);
  // Private keys live in memory only, never on the node's disk.
  add(VOLUMES.keys, { emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } }, false);
  add(VOLUMES.podInfo, { downwardAPI: { items: [{ path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } }] } }, true);
  // Both optional, unlike the trust bundle: without them the sidecar starts with nobody revoked
  // and no foreign domain trusted, which is the mesh as it was before either existed. The whole
  // ConfigMap is mounted (no items): a ConfigMap without the expected key is then an absent
  // list, reported by the sidecar, rather than a pod stuck in ContainerCreating.
  const feeds = planRevocationFederation(identitySource);
  if (feeds.mountRevocations) add(VOLUMES.revocations, { configMap: { name: REVOCATIONS_CONFIGMAP, optional: true } }, true);
  if (feeds.federationBundles !== null) add(VOLUMES.federation, { configMap: { name: FEDERATION_CONFIGMAP, optional: true } }, true);
  return plan;
}

/** Every volume name the injector may add, whatever the identity source (for conflict checks). */
export const MESHLET_VOLUME_NAMES: readonly string[] = Object.values(VOLUMES).map((v) => v.name);
