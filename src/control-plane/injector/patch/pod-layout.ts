import { REVOCATION_CONFIGMAP_KEY, REVOCATION_CONFIGMAP_NAME } from '../../../data-plane/identity/revocation/revocation-list-edit.ts';
import { SIDECAR_ENV } from '../../../data-plane/sidecar/sidecar-env.ts';

/**
 * Everything the injector adds to a pod, by name and path, in one place: the volume mounts
 * and the MESHLET_* paths the sidecar reads are built from these same constants, so a mount
 * and the variable pointing into it cannot drift apart.
 */

/** The sidecar's fixed uid/gid (Istio uses 1337, Linkerd 2102): the one uid whose traffic iptables leaves alone. */
export const PROXY_UID = 2020;

export const PROXY_CONTAINER = 'meshlet-proxy';
export const INIT_CONTAINER = 'meshlet-init';

// The sidecar's ports, taken from the sidecar's own defaults rather than retyped.
export const OUTBOUND_PORT = Number(SIDECAR_ENV.outboundPort.default);
export const INBOUND_CATCHALL_PORT = Number(SIDECAR_ENV.inboundCatchAllPort.default);
export const ADMIN_PORT = Number(SIDECAR_ENV.adminPort.default);
/** Declared on the sidecar so Prometheus pod discovery and `kubectl port-forward` can name it. */
export const ADMIN_PORT_NAME = 'meshlet-admin';

/** The identity service checks this audience on the projected token (a token for the API server is useless to it). */
export const TOKEN_AUDIENCE = 'meshlet-identity';
/** One hour: kubelet refreshes the projected token at 80 % of its life; the CA only needs it at SVID renewal. */
export const TOKEN_EXPIRATION_SECONDS = 3600;
export const TRUST_BUNDLE_CONFIGMAP = 'meshlet-trust-bundle';
export const DEFAULT_POLICY_CONFIGMAP = 'meshlet-policy';
/** The revocation list of the pod's namespace: the same name `meshlet identity revoke --configmap` prints. */
export const REVOCATIONS_CONFIGMAP = REVOCATION_CONFIGMAP_NAME;
/** Foreign trust domains' SPIFFE bundles, one key per domain (docs/identity-sources.md "Federation"). */
export const FEDERATION_CONFIGMAP = 'meshlet-federation';

export interface MeshletVolume {
  /** Volume name in the pod. */
  name: string;
  /** Where the sidecar mounts it. */
  mountPath: string;
}

export const VOLUMES = {
  token: { name: 'meshlet-token', mountPath: '/var/run/secrets/meshlet' },
  policy: { name: 'meshlet-policy', mountPath: '/etc/meshlet/policy' },
  trust: { name: 'meshlet-trust', mountPath: '/var/run/meshlet/trust' },
  keys: { name: 'meshlet-keys', mountPath: '/var/run/meshlet/keys' },
  podInfo: { name: 'meshlet-podinfo', mountPath: '/var/run/meshlet/podinfo' },
  /** identity source workload-api: the SPIRE agent socket, from the SPIFFE CSI driver (SIDECAR_ENV's default socket lives here). */
  workloadApi: { name: 'meshlet-workload-api', mountPath: '/run/spire/sockets' },
  /** identity source files: an SVID written by cert-manager's csi-driver-spiffe (tls.crt, tls.key, ca.crt). */
  svidFiles: { name: 'meshlet-svid', mountPath: SIDECAR_ENV.svidDir.default },
  /** identity sources files and workload-api: the namespace's revocation list (meshlet-ca learns it from the identity service). */
  revocations: { name: 'meshlet-revocations', mountPath: '/etc/meshlet/revocations' },
  /** identity sources files and meshlet-ca: federated trust domains' bundles (SPIRE federates by itself). */
  federation: { name: 'meshlet-federation', mountPath: '/var/run/meshlet/federation' },
} as const satisfies Record<string, MeshletVolume>;

/** CSI drivers behind the two external identity sources. */
export const SPIFFE_CSI_DRIVER = 'csi.spiffe.io';
export const CERT_MANAGER_SPIFFE_CSI_DRIVER = 'spiffe.csi.cert-manager.io';

export const TOKEN_FILE = `${VOLUMES.token.mountPath}/token`;
export const TRUST_BUNDLE_KEY = 'bundle.crt';
export const TRUST_BUNDLE_FILE = `${VOLUMES.trust.mountPath}/${TRUST_BUNDLE_KEY}`;
export const POD_LABELS_FILE = `${VOLUMES.podInfo.mountPath}/labels`;
export const REVOCATION_LIST_FILE = `${VOLUMES.revocations.mountPath}/${REVOCATION_CONFIGMAP_KEY}`;

/** Where the image keeps meshlet (deploy/Dockerfile WORKDIR): exec hooks need an absolute path. */
export const IMAGE_CLI = ['node', '/app/bin/meshlet.js'] as const;

/** The admin path kubelet probes instead of an app's own HTTP probe. */
export function appHealthPath(container: string, kind: string): string {
  return `/app-health/${container}/${kind}`;
}
