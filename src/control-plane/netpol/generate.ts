import { MeshletError } from '../../common/errors/meshlet-error.ts';
import { DEFAULT_TRUST_DOMAIN, parseWorkloadSpiffeId } from '../../common/identity/spiffe-id.ts';
import type { Caller, Client, ClientDestination, DefaultPolicy, Policy, Server } from '../../data-plane/policy/types.ts';
import { ADMIN_PORT } from '../injector/patch/pod-layout.ts';
import { isValidLabelValue, SERVICE_ACCOUNT_LABEL } from '../injector/patch/service-account-label.ts';
import { canonicalCidr } from './cidr.ts';
import { networkPolicyName } from './name.ts';
import {
  ANYWHERE,
  API_SERVER_SERVICE,
  DEFAULT_API_SERVER_PORTS,
  DEFAULT_CONTROL_PLANE_NAMESPACE,
  IDENTITY_SERVICE,
  KUBE_DNS,
  MANAGED_BY_LABEL,
  NAMESPACE_NAME_LABEL,
  NOTES_ANNOTATION,
  SOURCE_ANNOTATION,
  type LabelSelector,
  type NetworkPolicy,
  type NetworkPolicyEgressRule,
  type NetworkPolicyIngressRule,
  type NetworkPolicyPeer,
  type NetworkPolicyPort,
} from './network-policy.ts';

/** What the L7 policy does not say and the generator needs (the flags of `meshlet policy netpol`). */
export interface NetpolOptions {
  /** The mesh's trust domain: callers and destinations in it are this cluster's workloads. */
  trustDomain: string;
  /** MESHLET_DEFAULT_POLICY: what applies to a server without `default`, and to pods with no server. */
  meshDefault: DefaultPolicy;
  /** Where the identity service runs. */
  controlPlaneNamespace: string;
  /** Where kubelet's probes come from (the node network); empty: the admin port is open to every source. */
  probeCidrs: readonly string[];
  /** Namespaces whose pods scrape the admin port (Prometheus); empty: as probeCidrs. */
  metricsNamespaces: readonly string[];
  /** The API server's endpoint addresses, for clients whose policy names the `kubernetes` Service. */
  apiServerCidrs: readonly string[];
  apiServerPorts: readonly number[];
  /** Pods with a server and no client entry: restrict their egress to DNS and the identity service too. */
  defaultDenyEgress: boolean;
}

export const DEFAULT_NETPOL_OPTIONS: Readonly<NetpolOptions> = Object.freeze({
  trustDomain: DEFAULT_TRUST_DOMAIN,
  meshDefault: 'deny',
  controlPlaneNamespace: DEFAULT_CONTROL_PLANE_NAMESPACE,
  probeCidrs: [],
  metricsNamespaces: [],
  apiServerCidrs: [],
  apiServerPorts: DEFAULT_API_SERVER_PORTS,
  defaultDenyEgress: false,
});

/** One parsed policy, where it came from (for messages) and the namespace its workloads are in. */
export interface NetpolInput {
  label: string;
  policy: Policy;
  namespace: string;
}

export interface NetpolResult {
  networkPolicies: NetworkPolicy[];
  /** One line each, for stderr: where the output is wider than the L7 policy in a way to act on, or an entry got no NetworkPolicy. */
  warnings: string[];
}

/** A policy the generator cannot turn into NetworkPolicies (the CLI reports it like a usage problem). */
export class NetpolError extends MeshletError {}

/**
 * The namespace a policy's NetworkPolicies go to: its `metadata.namespace` (a policy applies
 * only to workloads of that namespace), else `--namespace`. Both, and different: an error — the
 * L7 policy would never apply to pods of the other namespace.
 */
export function policyNamespace(policy: Policy, label: string, flag: string | undefined): string {
  const own = policy.metadata?.namespace;
  if (own !== undefined && flag !== undefined && own !== flag) {
    throw new NetpolError('NETPOL_NAMESPACE_CONFLICT', `${label}: the policy is for namespace ${own} (metadata.namespace), not ${flag} (--namespace)`);
  }
  const ns = own ?? flag;
  if (ns === undefined) throw new NetpolError('NETPOL_NAMESPACE_REQUIRED', `${label}: the policy has no metadata.namespace: pass --namespace NS, the namespace of its workloads`);
  return ns;
}

/**
 * The L3/L4 shadow of L7 policies: one NetworkPolicy per workload selector (a server and a
 * client with the same selector share one), which isolates the directions the policy governs
 * and allows what the policy allows, as far as addresses and ports can say it. Never narrower
 * than the L7 policy where it can tell (a NetworkPolicy that drops what the sidecar would allow
 * breaks the app); wider where it cannot (every such place is in the notes annotation).
 * docs/network-policy.md is the contract. Pure: no I/O.
 */
export function generateNetworkPolicies(inputs: readonly NetpolInput[], options: NetpolOptions): NetpolResult {
  const out: NetworkPolicy[] = [];
  const warnings: string[] = [];
  const names = new Map<string, string>();
  for (const input of inputs) {
    for (const workload of workloadsOf(input, warnings)) {
      const np = workloadPolicy(input, workload, options, warnings);
      if (np === null) continue;
      const key = `${np.metadata.namespace}/${np.metadata.name}`;
      const earlier = names.get(key);
      if (earlier !== undefined) {
        throw new NetpolError('NETPOL_NAME_COLLISION', `${input.label} and ${earlier} both make NetworkPolicy ${key}: the second would replace the first when applied; give the policies different metadata.name`);
      }
      names.set(key, input.label);
      out.push(np);
    }
  }
  return { networkPolicies: out, warnings };
}

/** The pods one selector picks, and the policy entries (first server, first client) that govern them. */
interface Workload {
  podSelector: LabelSelector;
  server: Server | undefined;
  client: Client | undefined;
  entryNames: string[];
}

type Selector = Server['selector'];

function workloadsOf(input: NetpolInput, warnings: string[]): Workload[] {
  const byKey = new Map<string, Workload>();
  const add = (kind: 'server' | 'client', entry: Server | Client) => {
    const podSelector = podSelectorOf(entry.selector);
    if (podSelector === null) {
      warnings.push(`${input.label}: ${kind} "${entry.name}": ServiceAccount ${JSON.stringify(entry.selector.serviceAccount)} is longer than a label value (63 characters), so its pods carry no ${SERVICE_ACCOUNT_LABEL} label to select: no NetworkPolicy for it`);
      return;
    }
    const key = JSON.stringify(podSelector);
    let w = byKey.get(key);
    if (!w) byKey.set(key, (w = { podSelector, server: undefined, client: undefined, entryNames: [] }));
    // The sidecar uses the first entry whose selector matches (docs/policy.md): a later one
    // with the same selector never applies, so it must not open anything here either.
    if (w[kind] !== undefined) {
      warnings.push(`${input.label}: ${kind} "${entry.name}" has the same selector as ${kind} "${w[kind]!.name}", which the sidecar uses instead: left out`);
      return;
    }
    if (kind === 'server') w.server = entry as Server;
    else w.client = entry as Client;
    w.entryNames.push(entry.name);
  };
  for (const s of input.policy.spec.servers ?? []) add('server', s);
  for (const c of input.policy.spec.clients ?? []) add('client', c);
  return [...byKey.values()];
}

/** matchLabels as written, plus the ServiceAccount label the injector sets; keys sorted, so equal selectors compare equal. */
function podSelectorOf(selector: Selector): LabelSelector | null {
  const labels: Record<string, string> = { ...(selector.matchLabels ?? {}) };
  if (selector.serviceAccount !== undefined) {
    if (!isValidLabelValue(selector.serviceAccount)) return null;
    labels[SERVICE_ACCOUNT_LABEL] = selector.serviceAccount;
  }
  const keys = Object.keys(labels).sort();
  return keys.length === 0 ? {} : { matchLabels: Object.fromEntries(keys.map((k) => [k, labels[k]!])) };
}

function workloadPolicy(input: NetpolInput, w: Workload, options: NetpolOptions, warnings: string[]): NetworkPolicy | null {
  const notes: string[] = [];
  const ingress = ingressOf(input, w, options, notes);
  const egress = egressOf(input, w, options, notes, warnings);
  const uniqueNotes = [...new Set(notes)];
  const entries = [w.server ? `server "${w.server.name}"` : '', w.client ? `client "${w.client.name}"` : ''].filter((e) => e !== '').join(', ');
  if (ingress === null && egress === null) {
    warnings.push(`${input.label}: ${entries}: no NetworkPolicy: the L7 policy restricts neither direction at the network level (${uniqueNotes.join('; ')})`);
    return null;
  }
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: {
      name: networkPolicyName(input.policy.metadata?.name, w.entryNames),
      namespace: input.namespace,
      labels: { [MANAGED_BY_LABEL[0]]: MANAGED_BY_LABEL[1] },
      annotations: { [SOURCE_ANNOTATION]: `${input.label}: ${entries}`, ...(uniqueNotes.length > 0 ? { [NOTES_ANNOTATION]: uniqueNotes.join('\n') } : {}) },
    },
    spec: {
      podSelector: w.podSelector,
      policyTypes: [...(ingress !== null ? (['Ingress'] as const) : []), ...(egress !== null ? (['Egress'] as const) : [])],
      ...(ingress !== null ? { ingress } : {}),
      ...(egress !== null ? { egress } : {}),
    },
  };
}

// ---- ingress: who may reach the workload ----

/** A source of callers, widest first. */
type Source = { kind: 'anywhere' } | { kind: 'cluster' } | { kind: 'namespace'; namespace: string } | { kind: 'workload'; namespace: string; serviceAccount: string };

const tcp = (port: number): NetworkPolicyPort => ({ protocol: 'TCP', port });
const namespacePeer = (namespace: string): NetworkPolicyPeer => ({ namespaceSelector: { matchLabels: { [NAMESPACE_NAME_LABEL]: namespace } } });

/**
 * null: the direction is left alone (not in policyTypes) because the L7 policy admits every
 * caller on every port. Leaving it out, rather than writing an allow-everything rule, keeps
 * another NetworkPolicy that selects the same pods (NetworkPolicies add up) in force.
 */
function ingressOf(input: NetpolInput, w: Workload, options: NetpolOptions, notes: string[]): NetworkPolicyIngressRule[] | null {
  const server = w.server;
  if (server === undefined) {
    if (options.meshDefault !== 'deny') {
      notes.push(`ingress not restricted: no server entry selects these pods, so the mesh default (${options.meshDefault}) decides their callers, on every port`);
      return null;
    }
    notes.push('ingress: no server entry selects these pods and the mesh default is deny: only the sidecar admin port is open');
    return [adminRule(options, notes)];
  }
  const effective = server.default ?? options.meshDefault;
  if (server.mode === 'audit' || effective !== 'deny') {
    const why = server.mode === 'audit' ? 'is in mode audit (every request is allowed)' : `has default ${effective}${server.default === undefined ? ' (the mesh default)' : ''}, which also admits callers on ports and paths no route names`;
    notes.push(`ingress not restricted: server "${server.name}" ${why}`);
    return null;
  }
  const rules: NetworkPolicyIngressRule[] = [adminRule(options, notes)];
  // Ports with the same sources share one rule: fewer, more readable rules.
  const byKey = new Map<string, { sources: Source[]; ports: number[] }>();
  for (const { port } of server.ports) {
    const callers = server.routes.filter((r) => r.port === undefined || r.port === port).flatMap((r) => r.callers);
    const sources = narrowest(callers.map((c) => sourceOf(c, port, options, notes)));
    if (sources.length === 0) {
      notes.push(`port ${port}: no route lets any caller in, so no rule opens it`);
      continue;
    }
    const key = JSON.stringify(sources);
    const group = byKey.get(key);
    if (group) group.ports.push(port);
    else byKey.set(key, { sources, ports: [port] });
  }
  for (const { sources, ports } of byKey.values()) {
    const rulePorts = ports.map(tcp);
    if (sources[0]!.kind === 'anywhere') rules.push({ ports: rulePorts });
    else rules.push({ from: sources.map(peerOf), ports: rulePorts });
  }
  return rules;
}

/**
 * The sidecar's admin port: kubelet probes the rewritten probes there (docs/injector.md,
 * "Probes") and Prometheus scrapes it. Blocking it makes the pod never ready, so it is
 * always allowed; from everywhere unless the node network and the metrics namespaces are named.
 */
function adminRule(options: NetpolOptions, notes: string[]): NetworkPolicyIngressRule {
  const from: NetworkPolicyPeer[] = [
    ...options.probeCidrs.map((cidr) => ({ ipBlock: { cidr: canonicalCidr(cidr) ?? cidr } })),
    ...options.metricsNamespaces.map(namespacePeer),
  ];
  if (from.length === 0) {
    notes.push(`admin port ${ADMIN_PORT} (probes, /metrics): open to every source; --probe-cidr and --metrics-namespace narrow it`);
    return { ports: [tcp(ADMIN_PORT)] };
  }
  return { from, ports: [tcp(ADMIN_PORT)] };
}

function sourceOf(caller: Caller, port: number, options: NetpolOptions, notes: string[]): Source {
  const anywhere = (why: string): Source => {
    notes.push(`port ${port}: open to every source: ${why}`);
    return { kind: 'anywhere' };
  };
  if ('spiffeId' in caller) {
    const w = workloadOf(caller.spiffeId, options.trustDomain);
    if (w === null) return anywhere(`caller ${caller.spiffeId} is not a workload of trust domain ${options.trustDomain}, so no pod label or namespace stands for it`);
    if (!isValidLabelValue(w.serviceAccount)) {
      notes.push(`port ${port}: caller ${caller.spiffeId}: its ServiceAccount name is too long for a label, so all of namespace ${w.namespace} is allowed`);
      return { kind: 'namespace', namespace: w.namespace };
    }
    return { kind: 'workload', ...w };
  }
  if ('namespace' in caller) {
    const td = caller.trustDomain ?? options.trustDomain;
    if (td !== options.trustDomain) return anywhere(`caller namespace ${caller.namespace} of trust domain ${td} is not in this cluster`);
    return { kind: 'namespace', namespace: caller.namespace };
  }
  if ('trustDomain' in caller) {
    if (caller.trustDomain === options.trustDomain) return { kind: 'cluster' };
    return anywhere(`callers of trust domain ${caller.trustDomain} come from outside this cluster`);
  }
  if ('anyAuthenticated' in caller) return anywhere('caller anyAuthenticated: any mesh identity, federated ones included, may call from any address; L3/L4 cannot tell an authenticated caller');
  return anywhere('caller unauthenticated: a plaintext caller (PERMISSIVE port) has no identity an address could stand for');
}

/** `spiffe://<td>/ns/<ns>/sa/<sa>` of this trust domain with a namespace that can exist, else null. */
function workloadOf(id: string, trustDomain: string): { namespace: string; serviceAccount: string } | null {
  let w;
  try {
    w = parseWorkloadSpiffeId(id);
  } catch {
    return null;
  }
  if (w.trustDomain !== trustDomain || !isValidLabelValue(w.namespace)) return null;
  return { namespace: w.namespace, serviceAccount: w.serviceAccount };
}

/** Drops sources a wider one covers; sorted, so equal sets compare equal. */
function narrowest(sources: Source[]): Source[] {
  if (sources.some((s) => s.kind === 'anywhere')) return [{ kind: 'anywhere' }];
  if (sources.some((s) => s.kind === 'cluster')) return [{ kind: 'cluster' }];
  const namespaces = new Set(sources.flatMap((s) => (s.kind === 'namespace' ? [s.namespace] : [])));
  const kept = new Map<string, Source>();
  for (const s of sources) {
    if (s.kind === 'workload' && namespaces.has(s.namespace)) continue;
    kept.set(JSON.stringify(s), s);
  }
  return [...kept.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, s]) => s);
}

function peerOf(s: Source): NetworkPolicyPeer {
  switch (s.kind) {
    case 'cluster':
      return { namespaceSelector: {} };
    case 'namespace':
      return namespacePeer(s.namespace);
    case 'workload':
      return { ...namespacePeer(s.namespace), podSelector: { matchLabels: { [SERVICE_ACCOUNT_LABEL]: s.serviceAccount } } };
    case 'anywhere':
      throw new Error('unreachable: "anywhere" is a rule without from');
  }
}

// ---- egress: where the workload may go ----

/** One allowed egress: peers (none: every destination) on ports (none: every port and protocol). */
interface EgressAllowance {
  to: NetworkPolicyPeer[];
  ports: NetworkPolicyPort[] | undefined;
}

function egressOf(input: NetpolInput, w: Workload, options: NetpolOptions, notes: string[], warnings: string[]): NetworkPolicyEgressRule[] | null {
  const client = w.client;
  if (client === undefined && !options.defaultDenyEgress) {
    notes.push('egress not restricted: no client entry selects these pods (the mesh lets a workload without one call out); --default-deny-egress restricts it to DNS and the identity service');
    return null;
  }
  if (client !== undefined && (client.mode === 'audit' || client.default === 'audit')) {
    notes.push(`egress not restricted: client "${client.name}" ${client.mode === 'audit' ? 'is in mode audit' : 'has default audit'} (every destination is allowed)`);
    return null;
  }
  const allowances: EgressAllowance[] = [
    // Every pod resolves names; TCP too, for answers over 512 bytes (RFC 7766).
    {
      to: [{ ...namespacePeer(KUBE_DNS.namespace), podSelector: { matchLabels: { ...KUBE_DNS.podLabels } } }],
      ports: [{ protocol: 'UDP', port: KUBE_DNS.port }, tcp(KUBE_DNS.port)],
    },
    // The sidecar's SVIDs (identity source meshlet-ca) and discovery: the identity service only.
    {
      to: [{ ...namespacePeer(options.controlPlaneNamespace), podSelector: { matchLabels: { ...IDENTITY_SERVICE.podLabels } } }],
      ports: [tcp(IDENTITY_SERVICE.port)],
    },
  ];
  if (client === undefined) {
    notes.push('egress: no client entry selects these pods; --default-deny-egress allows DNS and the identity service only');
  } else {
    for (const d of client.destinations) allowances.push(...destinationAllowances(input, client, d, options, notes, warnings));
    if (client.default === 'all-authenticated') {
      notes.push(`client "${client.name}" has default all-authenticated: every pod of the cluster, on every port (meshed or not: L3/L4 cannot tell)`);
      allowances.push({ to: [{ namespaceSelector: {} }], ports: undefined });
    }
  }
  return mergeAllowances(allowances);
}

function destinationAllowances(input: NetpolInput, client: Client, d: ClientDestination, options: NetpolOptions, notes: string[], warnings: string[]): EgressAllowance[] {
  const where = `destination "${d.name}"`;
  const listedPorts = d.ports && d.ports.length > 0 ? d.ports.map(tcp) : undefined;
  const anywhere = (why: string): EgressAllowance[] => {
    notes.push(`${where}: every address${listedPorts ? ` on port${listedPorts.length > 1 ? 's' : ''} ${d.ports!.join(', ')}` : ', every port'}: ${why}`);
    return [{ to: ANYWHERE.map((b) => ({ ipBlock: { ...b } })), ports: listedPorts }];
  };
  // In the cluster, the ports a destination lists are the ones the app dials (a Service's
  // port); NetworkPolicy sees the connection after the Service's DNAT, on the pod's
  // targetPort, which the policy does not say. So pods are allowed on every port.
  const inCluster = (peer: NetworkPolicyPeer, what: string): EgressAllowance[] => {
    if (listedPorts) {
      const listed = d.ports!.length > 1 ? `its ports ${d.ports!.join(', ')} are the ports` : `its port ${d.ports![0]} is the port`;
      notes.push(`${where}: ${what} on every port (${listed} the app dials; after a Service's DNAT NetworkPolicy sees the pod's port, which the policy does not name)`);
    }
    return [{ to: [peer], ports: undefined }];
  };
  if ('spiffeId' in d) {
    const w = workloadOf(d.spiffeId, options.trustDomain);
    if (w === null) return anywhere(`${d.spiffeId} is not a workload of trust domain ${options.trustDomain}`);
    if (!isValidLabelValue(w.serviceAccount)) {
      notes.push(`${where}: ${d.spiffeId}: its ServiceAccount name is too long for a label, so all of namespace ${w.namespace} is allowed`);
      return inCluster(namespacePeer(w.namespace), `namespace ${w.namespace}`);
    }
    return inCluster({ ...namespacePeer(w.namespace), podSelector: { matchLabels: { [SERVICE_ACCOUNT_LABEL]: w.serviceAccount } } }, `the pods of ServiceAccount ${w.namespace}/${w.serviceAccount}`);
  }
  if ('service' in d) {
    const namespace = d.namespace ?? input.namespace;
    if (d.service === API_SERVER_SERVICE.name && namespace === API_SERVER_SERVICE.namespace) {
      if (options.apiServerCidrs.length === 0) {
        warnings.push(`${input.label}: client "${client.name}" ${where} is the API server (Service default/kubernetes), whose endpoints are not pods: the generated policy blocks it; pass --api-server-cidr with its addresses`);
        notes.push(`${where}: the API server: not allowed (no --api-server-cidr)`);
        return [];
      }
      notes.push(`${where}: the API server at ${options.apiServerCidrs.join(', ')} (--api-server-cidr) on ${options.apiServerPorts.join(', ')}`);
      return [{ to: options.apiServerCidrs.map((cidr) => ({ ipBlock: { cidr: canonicalCidr(cidr) ?? cidr } })), ports: options.apiServerPorts.map(tcp) }];
    }
    notes.push(`${where}: Service ${namespace}/${d.service}: every pod of namespace ${namespace} (a NetworkPolicy cannot name a Service, and the policy does not carry its selector)`);
    return inCluster(namespacePeer(namespace), `namespace ${namespace}`);
  }
  if ('namespace' in d) {
    const td = d.trustDomain ?? options.trustDomain;
    if (td !== options.trustDomain) return anywhere(`namespace ${d.namespace} of trust domain ${td} is outside this cluster`);
    return inCluster(namespacePeer(d.namespace), `namespace ${d.namespace}`);
  }
  if ('trustDomain' in d) {
    if (d.trustDomain === options.trustDomain) return inCluster({ namespaceSelector: {} }, 'every pod of the cluster');
    return anywhere(`trust domain ${d.trustDomain} is outside this cluster`);
  }
  if ('anyAuthenticated' in d) {
    notes.push(`${where}: anyAuthenticated: every pod of the cluster, on every port; a meshed destination outside the cluster (federation) needs a trustDomain or cidr destination here`);
    return [{ to: [{ namespaceSelector: {} }], ports: undefined }];
  }
  if ('cidr' in d) {
    const cidr = canonicalCidr(d.cidr);
    if (cidr === null) {
      warnings.push(`${input.label}: client "${client.name}" ${where}: ${JSON.stringify(d.cidr)} is not a CIDR: left out`);
      return [];
    }
    if (cidr !== d.cidr) notes.push(`${where}: ${d.cidr} written as its network ${cidr}`);
    return [{ to: [{ ipBlock: { cidr } }], ports: listedPorts }];
  }
  // host: NetworkPolicy has no DNS names. Narrower than "every address" would drop the app's
  // allowed calls (the sidecar still checks the name); without ports it is every port too.
  warnings.push(
    `${input.label}: client "${client.name}" ${where}: host ${d.host} cannot be named by a NetworkPolicy: egress to every address ` +
      (listedPorts ? `on port${listedPorts.length > 1 ? 's' : ''} ${d.ports!.join(', ')}` : 'on EVERY port (the destination lists no ports; list them to narrow this)') +
      '; the sidecar still checks the name',
  );
  return anywhere(`host ${d.host}: NetworkPolicy cannot name a DNS name`);
}

/** Allowances with the same ports become one rule (peers in first-seen order, each once); rules keep the order of their first allowance. */
function mergeAllowances(allowances: readonly EgressAllowance[]): NetworkPolicyEgressRule[] {
  const byPorts = new Map<string, { to: Map<string, NetworkPolicyPeer>; ports: NetworkPolicyPort[] | undefined }>();
  for (const a of allowances) {
    const key = JSON.stringify(a.ports ?? null);
    let rule = byPorts.get(key);
    if (!rule) byPorts.set(key, (rule = { to: new Map(), ports: a.ports }));
    for (const p of a.to) rule.to.set(JSON.stringify(p), p);
  }
  // A peer allowed on every port makes the same peer on some ports redundant.
  // Every pod of the cluster on every port makes the namespace and pod peers of that rule redundant.
  const everyPort = byPorts.get('null');
  const wholeCluster = JSON.stringify({ namespaceSelector: {} });
  const rules: NetworkPolicyEgressRule[] = [];
  for (const [key, rule] of byPorts) {
    const redundant = ([k, p]: [string, NetworkPolicyPeer]) =>
      key === 'null' ? rule.to.has(wholeCluster) && k !== wholeCluster && p.ipBlock === undefined : everyPort?.to.has(k) === true;
    const to = [...rule.to].filter((e) => !redundant(e)).map(([, p]) => p);
    if (to.length === 0) continue;
    rules.push({ to, ...(rule.ports ? { ports: rule.ports } : {}) });
  }
  return rules;
}
