import { bool, deepFreeze, EnvReader, hostPort, list, oneOf, text, type Env, type EnvVar } from '../../../common/config/env.ts';
import { SIDECAR_ENV } from '../../../data-plane/sidecar/sidecar-env.ts';
import type { ClientMeshDefault, DefaultPolicy } from '../../../data-plane/policy/types.ts';
import { parsePodOverrides, WEAKENING_ANNOTATIONS, type WeakeningAnnotation } from './pod-overrides.ts';

/**
 * The injector's cluster-wide settings: what the webhook (`meshlet injector`) and the offline
 * `meshlet inject` share. Per-pod choices come from annotations (annotations.ts); these are
 * the defaults and the things a pod must not choose (the image, the CA address).
 */
export interface InjectionSettings {
  /** The one meshlet image: sidecar and iptables init container. */
  image: string;
  imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
  /** Native sidecar (init container, restartPolicy Always; Kubernetes >= 1.29) unless a pod says otherwise. */
  nativeSidecar: boolean;
  trustDomain: string;
  caAddress: string;
  /** The mesh-wide default policy written into sidecars whose pod has no meshlet.io/default-policy. */
  defaultPolicy: DefaultPolicy;
  /** The mesh client default (docs/policy.md "Clients") written into every sidecar when it is not the sidecar's own default, allow. */
  defaultClientPolicy: ClientMeshDefault;
  /** What an unexpected injector error does to the pod: deny it, or let it run without the mesh. */
  failureMode: 'deny' | 'allow';
  /** Namespaces never injected, whatever the labels say. */
  excludedNamespaces: readonly string[];
  /** The annotations that weaken enforcement which pods may set (all by default); a pod with any other is refused. */
  allowedPodOverrides: readonly WeakeningAnnotation[];
  /** Discovery (docs/discovery.md), written into every sidecar: on/off, and what the cluster is. */
  discovery: 'off' | 'on';
  clusterDomain: string;
  podCidrs: readonly string[];
  serviceCidrs: readonly string[];
}

export const DEFAULT_IMAGE = 'ghcr.io/meshlet/meshlet:0.1.0';

export const INJECTION_ENV = {
  image: { name: 'MESHLET_INJECTOR_PROXY_IMAGE', default: DEFAULT_IMAGE, description: 'image of the injected sidecar and iptables init container', parse: text },
  imagePullPolicy: { name: 'MESHLET_INJECTOR_IMAGE_PULL_POLICY', default: 'IfNotPresent', description: 'imagePullPolicy of the injected containers', parse: oneOf('Always', 'IfNotPresent', 'Never') },
  nativeSidecar: { name: 'MESHLET_INJECTOR_NATIVE_SIDECAR', default: 'true', description: 'inject a native sidecar (Kubernetes >= 1.29); false: a regular first container held by `meshlet wait-ready`', parse: bool },
  trustDomain: SIDECAR_ENV.trustDomain,
  caAddress: { ...SIDECAR_ENV.caAddress, description: 'host:port of the identity service, written into every sidecar', parse: (raw: string) => (hostPort(raw), raw) },
  defaultPolicy: SIDECAR_ENV.defaultPolicy,
  defaultClientPolicy: { ...SIDECAR_ENV.defaultClientPolicy, description: 'mesh-wide client default for workloads no policy client selects, written into every sidecar unless it is allow (the sidecar default); a pod\'s meshlet.io/default-client-policy replaces it' },
  failureMode: { name: 'MESHLET_INJECTOR_FAILURE_MODE', default: 'deny', description: 'on an internal injector error: deny the pod, or allow it without the mesh (plus a warning)', parse: oneOf('deny', 'allow') },
  excludedNamespaces: { name: 'MESHLET_INJECTOR_EXCLUDED_NAMESPACES', default: 'kube-system,kube-public', description: 'namespaces never injected (comma-separated)', parse: list(text) },
  allowedPodOverrides: {
    name: 'MESHLET_INJECTOR_POD_OVERRIDES',
    default: 'all',
    description: `annotations that weaken enforcement which pods may set: all | none | a comma-separated list of ${WEAKENING_ANNOTATIONS.join(', ')}; a pod carrying another one is refused`,
    parse: parsePodOverrides,
  },
  // The sidecar's own variables, set once for the mesh and written into every sidecar.
  discovery: { ...SIDECAR_ENV.discovery, description: 'on: written into every sidecar with the three below, so each asks the identity service which destinations are meshed (docs/discovery.md); needs MESHLET_POD_CIDRS and MESHLET_SERVICE_CIDRS' },
  clusterDomain: { ...SIDECAR_ENV.clusterDomain, description: "the cluster's DNS domain, written into every sidecar with discovery on" },
  podCidrs: { ...SIDECAR_ENV.podCidrs, description: 'the pod CIDRs, comma-separated, written into every sidecar with discovery on' },
  serviceCidrs: { ...SIDECAR_ENV.serviceCidrs, description: 'the service CIDRs, comma-separated, written into every sidecar with discovery on' },
} satisfies Record<string, EnvVar<unknown>>;

/** Reads INJECTION_ENV from `env`; throws ConfigError listing every bad variable. */
export function readInjectionSettings(env: Env): Readonly<InjectionSettings> {
  const r = new EnvReader(env);
  const settings = readInjectionSettingsWith(r);
  r.done();
  return settings;
}

/** Reads INJECTION_ENV through a reader the caller owns, so its problems join the caller's (`meshlet injector`). */
export function readInjectionSettingsWith(r: EnvReader): Readonly<InjectionSettings> {
  const settings: InjectionSettings = {
    image: r.read(INJECTION_ENV.image),
    imagePullPolicy: r.read(INJECTION_ENV.imagePullPolicy),
    nativeSidecar: r.read(INJECTION_ENV.nativeSidecar),
    trustDomain: r.read(INJECTION_ENV.trustDomain),
    caAddress: r.read(INJECTION_ENV.caAddress),
    defaultPolicy: r.read(INJECTION_ENV.defaultPolicy),
    defaultClientPolicy: r.read(INJECTION_ENV.defaultClientPolicy),
    failureMode: r.read(INJECTION_ENV.failureMode),
    excludedNamespaces: r.read(INJECTION_ENV.excludedNamespaces),
    allowedPodOverrides: r.read(INJECTION_ENV.allowedPodOverrides),
    discovery: r.read(INJECTION_ENV.discovery),
    clusterDomain: r.read(INJECTION_ENV.clusterDomain),
    podCidrs: r.read(INJECTION_ENV.podCidrs) ?? [],
    serviceCidrs: r.read(INJECTION_ENV.serviceCidrs) ?? [],
  };
  if (settings.discovery === 'on') {
    // Every injected sidecar would refuse to start without them (sidecar-env.ts): refuse here, once.
    if (settings.podCidrs.length === 0) r.problem(INJECTION_ENV.podCidrs.name, 'required when MESHLET_DISCOVERY=on');
    if (settings.serviceCidrs.length === 0) r.problem(INJECTION_ENV.serviceCidrs.name, 'required when MESHLET_DISCOVERY=on');
  }
  return deepFreeze(settings);
}

/** Every setting at its catalog default (an empty environment). */
export const DEFAULT_INJECTION_SETTINGS: Readonly<InjectionSettings> = readInjectionSettings({});
