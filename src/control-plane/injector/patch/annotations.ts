import { MIN_PROXY_MEMORY_LIMIT_MIB, memoryQuantityBytes, QUANTITY } from './heap-settings.ts';
import { parsePortProtocols, parseServerFirstPorts, type PortProtocolDecision } from '../../../data-plane/proxy/detect/port-protocol.ts';
import { IDENTITY_SOURCES, type IdentitySourceKind } from '../../../data-plane/sidecar/sidecar-env.ts';
import { FieldError, isK8sName, list, oneOf, port } from '../../../common/config/env.ts';
import { CLIENT_MESH_DEFAULTS, DEFAULT_POLICIES, type ClientMeshDefault, type DefaultPolicy } from '../../../data-plane/policy/types.ts';
import { LOG_LEVELS, type LogLevel } from '../../../common/log/logger.ts';
import { PodRefusedError } from './errors.ts';
import { ipCidr } from '../iptables/ip-cidr.ts';

/** Every annotation the injector reads (and the one it writes). Documented in docs/injector.md. */
export const ANNOTATIONS = {
  inject: 'meshlet.io/inject',
  status: 'meshlet.io/status',
  nativeSidecar: 'meshlet.io/native-sidecar',
  skipInboundPorts: 'meshlet.io/skip-inbound-ports',
  skipOutboundPorts: 'meshlet.io/skip-outbound-ports',
  skipOutboundCidrs: 'meshlet.io/skip-outbound-cidrs',
  permissivePorts: 'meshlet.io/permissive-ports',
  opaquePorts: 'meshlet.io/opaque-ports',
  defaultPolicy: 'meshlet.io/default-policy',
  defaultClientPolicy: 'meshlet.io/default-client-policy',
  proxyCpuRequest: 'meshlet.io/proxy-cpu-request',
  proxyCpuLimit: 'meshlet.io/proxy-cpu-limit',
  proxyMemoryRequest: 'meshlet.io/proxy-memory-request',
  proxyMemoryLimit: 'meshlet.io/proxy-memory-limit',
  logLevel: 'meshlet.io/log-level',
  identitySource: 'meshlet.io/identity-source',
  policyConfigMap: 'meshlet.io/policy-configmap',
  mergeMetrics: 'meshlet.io/merge-metrics',
  serverFirstPorts: 'meshlet.io/server-first-ports',
  portProtocols: 'meshlet.io/port-protocols',
} as const;

/** What a pod's annotations ask for; absent annotations are undefined (the settings decide). */
export interface PodAnnotations {
  inject?: 'enabled' | 'disabled';
  alreadyInjected: boolean;
  nativeSidecar?: boolean;
  skipInboundPorts: number[];
  skipOutboundPorts: number[];
  skipOutboundCidrs: string[];
  permissivePorts: number[];
  opaquePorts: number[];
  defaultPolicy?: DefaultPolicy;
  /** The client default of this pod's sidecar (MESHLET_DEFAULT_CLIENT_POLICY), over the mesh's. */
  defaultClientPolicy?: ClientMeshDefault;
  resources: { cpuRequest?: string; cpuLimit?: string; memoryRequest?: string; memoryLimit?: string };
  logLevel?: LogLevel;
  identitySource?: IdentitySourceKind;
  policyConfigMap?: string;
  /** false: the app's own prometheus.io annotations are left as they are (metrics-merge.ts). */
  mergeMetrics?: boolean;
  /** Replaces the sidecar's default list of server-speaks-first destination ports (written as MESHLET_SERVER_FIRST_PORTS). */
  serverFirstPorts?: ReadonlySet<number>;
  /** A protocol per app port, over its name and appProtocol (inbound-ports.ts). */
  portProtocols: ReadonlyMap<number, PortProtocolDecision>;
}

// Annotation values go through the environment catalogs' field parsers (src/common/config/env.ts):
// a port, a list, a policy name or a log level reads the same in an annotation as in a variable.

/** A comma-separated annotation value; a bad entry reads `"x" <what is wrong>`. */
function annotationList<T>(item: (raw: string) => T): (raw: string) => T[] {
  return list(item, (entry, message) => `${JSON.stringify(entry)} ${message}`);
}

/**
 * A Kubernetes quantity (heap-settings.ts), checked here so a typo is a refusal with the
 * annotation's name, not a pod the API server rejects with a message about the sidecar.
 */
function quantity(raw: string): string {
  if (!QUANTITY.test(raw)) throw new FieldError('is not a Kubernetes quantity (e.g. 100m, 0.5, 128Mi, 1Gi)');
  return raw;
}

/** The sidecar's memory limit: a quantity the V8 heap can be sized from (heap-settings.ts). */
function proxyMemoryLimit(raw: string): string {
  const bytes = memoryQuantityBytes(quantity(raw));
  if (bytes === null) throw new FieldError('is not a memory quantity in bytes (e.g. 256Mi, 1Gi)');
  if (bytes < MIN_PROXY_MEMORY_LIMIT_MIB * 1024 * 1024) throw new FieldError(`is below ${MIN_PROXY_MEMORY_LIMIT_MIB}Mi, the least the sidecar runs in (docs/performance.md)`);
  return raw;
}

function configMapName(raw: string): string {
  if (!isK8sName(raw)) throw new FieldError('is not a ConfigMap name (lowercase a-z 0-9 - ., at most 253)');
  return raw;
}

const portList = annotationList(port);

/**
 * Reads and validates the meshlet.io/* annotations. Every bad value is collected, then one
 * PodRefusedError (INJECTOR_ANNOTATION_INVALID) names each annotation and what is wrong.
 */
export function parsePodAnnotations(annotations: Readonly<Record<string, unknown>> | undefined): PodAnnotations {
  const a = annotations ?? {};
  const problems: string[] = [];
  const read = <T>(key: string, parse: (raw: string) => T): T | undefined => {
    const raw = a[key];
    if (raw === undefined) return undefined;
    if (typeof raw !== 'string') {
      problems.push(`annotation ${key} must be a string`);
      return undefined;
    }
    try {
      return parse(raw.trim());
    } catch (err) {
      problems.push(`annotation ${key}=${JSON.stringify(raw)}: ${(err as Error).message}`);
      return undefined;
    }
  };
  const ports = (key: string) => read(key, portList) ?? [];

  const parsed: PodAnnotations = {
    inject: read(ANNOTATIONS.inject, oneOf('enabled', 'disabled')),
    alreadyInjected: a[ANNOTATIONS.status] !== undefined,
    // Only "true" / "false" (not the environment's 1 / 0): an annotation is read by people.
    nativeSidecar: read(ANNOTATIONS.nativeSidecar, (raw) => oneOf('true', 'false')(raw) === 'true'),
    skipInboundPorts: ports(ANNOTATIONS.skipInboundPorts),
    skipOutboundPorts: ports(ANNOTATIONS.skipOutboundPorts),
    skipOutboundCidrs: read(ANNOTATIONS.skipOutboundCidrs, annotationList(ipCidr)) ?? [],
    permissivePorts: ports(ANNOTATIONS.permissivePorts),
    opaquePorts: ports(ANNOTATIONS.opaquePorts),
    defaultPolicy: read(ANNOTATIONS.defaultPolicy, oneOf(...DEFAULT_POLICIES)),
    defaultClientPolicy: read(ANNOTATIONS.defaultClientPolicy, oneOf(...CLIENT_MESH_DEFAULTS)),
    resources: {
      cpuRequest: read(ANNOTATIONS.proxyCpuRequest, quantity),
      cpuLimit: read(ANNOTATIONS.proxyCpuLimit, quantity),
      memoryRequest: read(ANNOTATIONS.proxyMemoryRequest, quantity),
      memoryLimit: read(ANNOTATIONS.proxyMemoryLimit, proxyMemoryLimit),
    },
    logLevel: read(ANNOTATIONS.logLevel, oneOf(...LOG_LEVELS)),
    identitySource: read(ANNOTATIONS.identitySource, oneOf(...IDENTITY_SOURCES)),
    policyConfigMap: read(ANNOTATIONS.policyConfigMap, configMapName),
    mergeMetrics: read(ANNOTATIONS.mergeMetrics, (raw) => oneOf('true', 'false')(raw) === 'true'),
    serverFirstPorts: read(ANNOTATIONS.serverFirstPorts, parseServerFirstPorts),
    portProtocols: read(ANNOTATIONS.portProtocols, parsePortProtocols) ?? new Map(),
  };
  if (problems.length > 0) throw new PodRefusedError('INJECTOR_ANNOTATION_INVALID', problems);
  return parsed;
}
