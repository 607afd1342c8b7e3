import { planMetrics, type MetricsPlan } from './metrics-merge.ts';
import { ANNOTATIONS, parsePodAnnotations } from './annotations.ts';
import { iptablesInitContainer, proxyContainer, type MeshPlan } from './containers.ts';
import { PodRefusedError } from './errors.ts';
import { checkInterceptionEscapes } from './interception-escape.ts';
import { checkPodOverrides } from './pod-overrides.ts';
import { planInboundPorts } from './inbound-ports.ts';
import type { JsonPatchOp } from './json-patch.ts';
import { pointer } from './json-pointer.ts';
import { ADMIN_PORT, ADMIN_PORT_NAME, INIT_CONTAINER, PROXY_CONTAINER } from './pod-layout.ts';
import type { Pod } from './pod-shape.ts';
import { initContainerProbeWarnings, planProbes } from './probes.ts';
import { planServiceAccountLabel, SERVICE_ACCOUNT_LABEL, type ServiceAccountLabelPlan } from './service-account-label.ts';
import type { InjectionSettings } from './settings.ts';
import { SIDECAR_ENV, type IdentitySourceKind } from '../../../data-plane/sidecar/sidecar-env.ts';

const DEFAULT_IDENTITY_SOURCE = SIDECAR_ENV.identitySource.default as IdentitySourceKind;
import { MESHLET_VOLUME_NAMES, meshletVolumes } from './volumes.ts';

export type SkipReason = 'excluded-namespace' | 'opted-out' | 'host-network' | 'already-injected';

export type InjectionResult =
  | { outcome: 'injected'; patch: JsonPatchOp[]; warnings: string[] }
  | { outcome: 'skipped'; reason: SkipReason; message: string; warnings: string[] };


/** The value of meshlet.io/status: what was added, so a reader (or a later uninject) knows. */
export interface InjectionStatus {
  version: 1;
  mode: 'native-sidecar' | 'container';
  initContainers: string[];
  containers: string[];
  volumes: string[];
}

/**
 * Pod -> the JSON Patch that meshes it, or the reason it is left alone. Pure: the webhook and
 * `meshlet inject` both call it, so the two cannot disagree. Throws PodRefusedError for a pod
 * that asked for the mesh in a way that cannot work (the caller denies it with the message).
 *
 * Order in the pod: native mode puts the iptables init container first and the sidecar second,
 * BEFORE the pod's own init containers: those then run with the proxy up, so their traffic is
 * meshed too (Istio and Linkerd do the same). Regular-container mode (< 1.29) has no proxy
 * during the init phase, so the iptables init container goes LAST among the init containers:
 * the pod's own init containers run before interception and can reach the network directly
 * (not meshed), instead of having every connection redirected to a proxy that is not there.
 */
export function injectPod(pod: Pod, namespace: string, settings: InjectionSettings): InjectionResult {
  if (!pod || typeof pod !== 'object' || !pod.spec || typeof pod.spec !== 'object' || !Array.isArray(pod.spec.containers)) {
    throw new PodRefusedError('INJECTOR_POD_MALFORMED', ['the object has no spec.containers list']);
  }
  if (settings.excludedNamespaces.includes(namespace)) return skipped('excluded-namespace', `namespace ${namespace} is never injected`, false);
  const annotations = parsePodAnnotations(pod.metadata?.annotations);
  if (annotations.inject === 'disabled') return skipped('opted-out', `annotation ${ANNOTATIONS.inject}=disabled`, true);
  if (annotations.alreadyInjected || hasContainer(pod, PROXY_CONTAINER)) return skipped('already-injected', `already injected (${ANNOTATIONS.status} present)`, false);
  if (pod.spec.hostNetwork === true) return skipped('host-network', 'hostNetwork pods share the node network namespace and are never injected', true);

  checkNameConflicts(pod);
  checkInterceptionEscapes(pod);
  checkPodOverrides(pod.metadata?.annotations, annotations, settings);
  const containers = pod.spec.containers;
  const inbound = planInboundPorts(containers, annotations);
  const probePorts = { skipped: new Set(annotations.skipInboundPorts), listen: new Set(inbound.map((p) => p.listenPort)) };
  const probes = planProbes(containers, probePorts);
  probes.warnings.push(...initContainerProbeWarnings(pod.spec.initContainers ?? [], probePorts));
  const volumes = meshletVolumes(annotations.policyConfigMap, annotations.identitySource ?? DEFAULT_IDENTITY_SOURCE);
  // Prometheus scrapes plaintext: a scrape of an intercepted port goes through the sidecar (metrics-merge.ts).
  const metrics = planMetrics(pod.metadata?.annotations, annotations.mergeMetrics ?? true, (p) => !probePorts.skipped.has(p) && !probePorts.listen.has(p));
  if (metrics.kind === 'keep' && metrics.warning !== null) probes.warnings.push(metrics.warning);
  const saLabel = planServiceAccountLabel(pod);
  if (saLabel.kind === 'omit') probes.warnings.push(saLabel.warning);
  const plan: MeshPlan = { inbound, volumes, appProbes: probes.appProbes, appMetrics: metrics.kind === 'merge' ? metrics.appMetrics : null, annotations, native: annotations.nativeSidecar ?? settings.nativeSidecar };
  return { outcome: 'injected', patch: buildPatch(pod, plan, probes.rewrites, metrics, saLabel, settings), warnings: probes.warnings };
}

function buildPatch(pod: Pod, plan: MeshPlan, rewrites: ReturnType<typeof planProbes>['rewrites'], metrics: MetricsPlan, saLabel: ServiceAccountLabelPlan, settings: InjectionSettings): JsonPatchOp[] {
  const ops: JsonPatchOp[] = [];
  const spec = pod.spec;
  const proxy = proxyContainer(plan, settings);
  const init = iptablesInitContainer(plan, settings);
  const volumes = plan.volumes.volumes;
  const status: InjectionStatus = {
    version: 1,
    mode: plan.native ? 'native-sidecar' : 'container',
    initContainers: plan.native ? [INIT_CONTAINER, PROXY_CONTAINER] : [INIT_CONTAINER],
    containers: plan.native ? [] : [PROXY_CONTAINER],
    volumes: volumes.map((v) => v.name as string),
  };

  // Probe rewrites first: they address containers by their original index.
  for (const r of rewrites) ops.push({ op: 'replace', path: pointer('spec', 'containers', r.containerIndex, r.field), value: r.probe });

  const userInits = spec.initContainers ?? [];
  if (plan.native) {
    if (userInits.length === 0) ops.push({ op: 'add', path: pointer('spec', 'initContainers'), value: [init, proxy] });
    else {
      // Inserting at 0 twice, in reverse: the result is [init, proxy, ...user's].
      ops.push({ op: 'add', path: pointer('spec', 'initContainers', 0), value: proxy });
      ops.push({ op: 'add', path: pointer('spec', 'initContainers', 0), value: init });
    }
  } else {
    if (userInits.length === 0) ops.push({ op: 'add', path: pointer('spec', 'initContainers'), value: [init] });
    else ops.push({ op: 'add', path: pointer('spec', 'initContainers', '-'), value: init });
    ops.push({ op: 'add', path: pointer('spec', 'containers', 0), value: proxy });
  }

  if (!spec.volumes || spec.volumes.length === 0) ops.push({ op: 'add', path: pointer('spec', 'volumes'), value: volumes });
  else for (const v of volumes) ops.push({ op: 'add', path: pointer('spec', 'volumes', '-'), value: v });

  const added: Record<string, string> = { [ANNOTATIONS.status]: JSON.stringify(status) };
  // Prometheus' kubernetes_sd scrape config (deploy/monitoring) finds pods by these: the
  // sidecar's own /metrics when the pod names no scrape target; the merged endpoint when the
  // app's own target is one the sidecar intercepts ('add' replaces an existing member, RFC 6902 §4.1).
  if (metrics.kind !== 'keep') Object.assign(added, metrics.annotations);
  // NetworkPolicy selects pods by labels, never by ServiceAccount: this label lets `meshlet
  // policy netpol` select a ServiceAccount's pods. 'add' overwrites a value the pod declared
  // itself, so an injected pod cannot claim another ServiceAccount's label.
  const labels: Record<string, string> = saLabel.kind === 'set' ? { [SERVICE_ACCOUNT_LABEL]: saLabel.value } : {};
  if (!pod.metadata) {
    ops.push({ op: 'add', path: pointer('metadata'), value: { annotations: added, ...(saLabel.kind === 'set' ? { labels } : {}) } });
    return ops;
  }
  if (!pod.metadata.annotations) ops.push({ op: 'add', path: pointer('metadata', 'annotations'), value: added });
  else for (const [k, v] of Object.entries(added)) ops.push({ op: 'add', path: pointer('metadata', 'annotations', k), value: v });
  if (saLabel.kind === 'set') {
    if (!pod.metadata.labels) ops.push({ op: 'add', path: pointer('metadata', 'labels'), value: labels });
    else ops.push({ op: 'add', path: pointer('metadata', 'labels', SERVICE_ACCOUNT_LABEL), value: saLabel.value });
  } else if (saLabel.remove) {
    ops.push({ op: 'remove', path: pointer('metadata', 'labels', SERVICE_ACCOUNT_LABEL) });
  }
  return ops;
}

function skipped(reason: SkipReason, message: string, warn: boolean): InjectionResult {
  return { outcome: 'skipped', reason, message, warnings: warn ? [`meshlet: not injected: ${message}`] : [] };
}

function hasContainer(pod: Pod, name: string): boolean {
  return [...pod.spec.containers, ...(pod.spec.initContainers ?? [])].some((c) => c?.name === name);
}

/** Names the injector adds must be free: two containers or volumes with one name is an invalid pod. */
function checkNameConflicts(pod: Pod): void {
  const problems: string[] = [];
  const containerNames = new Set([...pod.spec.containers, ...(pod.spec.initContainers ?? [])].map((c) => c?.name));
  if (containerNames.has(INIT_CONTAINER)) problems.push(`the pod already has a container named ${INIT_CONTAINER}`);
  const volumeNames = new Set((pod.spec.volumes ?? []).map((v) => v?.name));
  for (const name of MESHLET_VOLUME_NAMES) {
    if (volumeNames.has(name)) problems.push(`the pod already has a volume named ${name}`);
  }
  const portNames = pod.spec.containers.flatMap((c) => c.ports ?? []).map((p) => p.name);
  if (portNames.includes(ADMIN_PORT_NAME)) problems.push(`the pod already has a port named ${ADMIN_PORT_NAME}`);
  if (problems.length > 0) throw new PodRefusedError('INJECTOR_NAME_CONFLICT', problems);
}

