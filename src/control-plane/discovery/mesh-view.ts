import { workloadSpiffeId } from '../../common/identity/spiffe-id.ts';
import { protocolFromServicePort, type PortProtocolDecision } from '../../data-plane/proxy/detect/port-protocol.ts';
import { canonicalIp, CidrSet } from './addresses.ts';
import type { EndpointSliceRecord, PodRecord, ServicePortRecord, ServiceRecord } from './objects.ts';

/**
 * What the cluster says about a destination, as a pure in-memory model: Pods, Services and
 * EndpointSlices go in (objects.ts records, from the watch), `resolve()` answers. No I/O, no
 * clock. docs/discovery.md has the rules as a table; in short:
 *
 * - meshed:   every endpoint behind the destination is a Pod meshlet injected → the sidecar
 *             originates mTLS and accepts only a server whose SPIFFE ID is in `identities`.
 * - unmeshed: every endpoint is known and none is meshed → plaintext, labelled `unmeshed`.
 * - mixed:    a Service with both → never through the Service address (kube-proxy would pick
 *             either kind, and plaintext could land on a meshed pod): the sidecar dials the
 *             listed endpoints itself, each by its own rule (`identity` set → mTLS pinned to
 *             it; empty → plaintext).
 * - external: outside the cluster (an address outside the pod and service CIDRs that no Pod or
 *             Service has, a name that is not a cluster name, an ExternalName Service) → the
 *             sidecar's egress rules.
 * - unknown:  in the cluster but not (yet) known, or not usable: an address in the CIDRs that
 *             matches nothing, a cluster name with no Service, a Service port that does not
 *             exist, no endpoints, an endpoint whose Pod has not been seen → fail closed:
 *             refuse.
 *
 * Every endpoint counts, ready or not: a not-ready meshed pod may become ready before the
 * sidecar asks again, and plaintext must not reach it then (a Service whose ready endpoints are
 * unmeshed but which has a meshed one starting is `mixed`, not `unmeshed`). Terminal pods
 * (Succeeded/Failed) are left out: their IPs can be given to new pods.
 */
export type ResolutionKind = 'meshed' | 'unmeshed' | 'mixed' | 'external' | 'unknown';

export const RESOLUTION_KINDS: readonly ResolutionKind[] = ['meshed', 'unmeshed', 'mixed', 'external', 'unknown'];

export interface ResolvedEndpoint {
  address: string;
  port: number;
  /** The pod's SPIFFE ID when it is meshed; '' for an unmeshed endpoint. */
  identity: string;
  ready: boolean;
}

export interface Resolution {
  kind: ResolutionKind;
  /** Sorted, distinct SPIFFE IDs of the meshed endpoints (all of them for `meshed`). */
  identities: string[];
  /** From the Service port (appProtocol, then name; port-protocol.ts); 'detect' when nothing declares one. */
  protocol: PortProtocolDecision;
  endpoints: ResolvedEndpoint[];
  /** More endpoints exist than `maxEndpoints`; the list holds the first ones. */
  endpointsTruncated: boolean;
  /** `name.namespace` when the destination is (or goes through) a Service. */
  service: string;
  /** The DNS name of an ExternalName Service. */
  externalName: string;
  /** Why, in a few words (for logs and the caller's error messages). */
  reason: string;
}

export interface MeshViewOptions {
  trustDomain: string;
  /** The cluster's DNS domain (kubelet --cluster-domain), e.g. cluster.local. */
  clusterDomain: string;
  /** Pod and service CIDRs: an address inside them that matches nothing is `unknown`, not `external`. */
  clusterCidrs: readonly string[];
  /** Endpoints listed in one answer at most (default 256). The kind is decided on all of them. */
  maxEndpoints?: number;
  /** Distinct identities in one answer at most (default 64); more → `unknown` (never a partial pin list). */
  maxIdentities?: number;
}

type Member = { kind: 'meshed'; identity: string; pod: PodRecord } | { kind: 'unmeshed'; pod: PodRecord | undefined } | { kind: 'unknown'; why: string };

function addTo<K, V>(index: Map<K, Set<V>>, key: K, value: V): void {
  let set = index.get(key);
  if (set === undefined) index.set(key, (set = new Set()));
  set.add(value);
}

function removeFrom<K, V>(index: Map<K, Set<V>>, key: K, value: V): void {
  const set = index.get(key);
  if (set === undefined) return;
  set.delete(value);
  if (set.size === 0) index.delete(key);
}

const isTerminal = (pod: PodRecord): boolean => pod.phase === 'Succeeded' || pod.phase === 'Failed';

export class MeshView {
  readonly #trustDomain: string;
  readonly #clusterDomain: string;
  readonly #cidrs: CidrSet;
  readonly #maxEndpoints: number;
  readonly #maxIdentities: number;

  readonly #pods = new Map<string, PodRecord>();
  readonly #podsByIp = new Map<string, Set<string>>();
  readonly #podsByDnsName = new Map<string, Set<string>>();
  readonly #podsByNamespace = new Map<string, Set<string>>();
  readonly #services = new Map<string, ServiceRecord>();
  readonly #servicesByIp = new Map<string, Set<string>>();
  readonly #servicesByNamespace = new Map<string, Set<string>>();
  readonly #slices = new Map<string, EndpointSliceRecord>();
  readonly #slicesByService = new Map<string, Set<string>>();
  readonly #slicesByIp = new Map<string, Set<string>>();

  constructor(options: MeshViewOptions) {
    this.#trustDomain = options.trustDomain;
    this.#clusterDomain = options.clusterDomain.toLowerCase().replace(/\.$/, '');
    this.#cidrs = new CidrSet(options.clusterCidrs);
    this.#maxEndpoints = options.maxEndpoints ?? 256;
    this.#maxIdentities = options.maxIdentities ?? 64;
  }

  get counts(): { pods: number; services: number; endpointslices: number } {
    return { pods: this.#pods.size, services: this.#services.size, endpointslices: this.#slices.size };
  }

  // ---------- updates (from the watch) ----------

  upsertPod(pod: PodRecord): void {
    const key = `${pod.namespace}/${pod.name}`;
    this.deletePod(key);
    this.#pods.set(key, pod);
    addTo(this.#podsByNamespace, pod.namespace, key);
    if (!isTerminal(pod)) for (const ip of pod.ips) addTo(this.#podsByIp, ip, key);
    if (pod.hostname !== '' && pod.subdomain !== '') addTo(this.#podsByDnsName, `${pod.hostname}.${pod.subdomain}.${pod.namespace}`, key);
  }

  /** `key` is namespace/name. */
  deletePod(key: string): void {
    const old = this.#pods.get(key);
    if (old === undefined) return;
    this.#pods.delete(key);
    removeFrom(this.#podsByNamespace, old.namespace, key);
    for (const ip of old.ips) removeFrom(this.#podsByIp, ip, key);
    if (old.hostname !== '' && old.subdomain !== '') removeFrom(this.#podsByDnsName, `${old.hostname}.${old.subdomain}.${old.namespace}`, key);
  }

  upsertService(svc: ServiceRecord): void {
    const key = `${svc.namespace}/${svc.name}`;
    this.deleteService(key);
    this.#services.set(key, svc);
    addTo(this.#servicesByNamespace, svc.namespace, key);
    for (const ip of svc.ips) addTo(this.#servicesByIp, ip, key);
  }

  deleteService(key: string): void {
    const old = this.#services.get(key);
    if (old === undefined) return;
    this.#services.delete(key);
    removeFrom(this.#servicesByNamespace, old.namespace, key);
    for (const ip of old.ips) removeFrom(this.#servicesByIp, ip, key);
  }

  upsertEndpointSlice(slice: EndpointSliceRecord): void {
    const key = `${slice.namespace}/${slice.name}`;
    this.deleteEndpointSlice(key);
    this.#slices.set(key, slice);
    if (slice.service !== '') addTo(this.#slicesByService, `${slice.namespace}/${slice.service}`, key);
    for (const e of slice.endpoints) for (const ip of e.addresses) addTo(this.#slicesByIp, ip, key);
  }

  deleteEndpointSlice(key: string): void {
    const old = this.#slices.get(key);
    if (old === undefined) return;
    this.#slices.delete(key);
    if (old.service !== '') removeFrom(this.#slicesByService, `${old.namespace}/${old.service}`, key);
    for (const e of old.endpoints) for (const ip of e.addresses) removeFrom(this.#slicesByIp, ip, key);
  }

  /** A fresh list (after a re-list): everything of that resource not in `records` is gone. */
  replacePods(records: readonly PodRecord[]): void {
    this.#replace(this.#pods, records, (r) => this.upsertPod(r), (k) => this.deletePod(k));
  }

  replaceServices(records: readonly ServiceRecord[]): void {
    this.#replace(this.#services, records, (r) => this.upsertService(r), (k) => this.deleteService(k));
  }

  replaceEndpointSlices(records: readonly EndpointSliceRecord[]): void {
    this.#replace(this.#slices, records, (r) => this.upsertEndpointSlice(r), (k) => this.deleteEndpointSlice(k));
  }

  #replace<R extends { namespace: string; name: string }>(current: Map<string, unknown>, records: readonly R[], upsert: (r: R) => void, remove: (key: string) => void): void {
    const keep = new Set(records.map((r) => `${r.namespace}/${r.name}`));
    for (const key of [...current.keys()]) if (!keep.has(key)) remove(key);
    for (const r of records) upsert(r);
  }

  // ---------- resolution ----------

  /**
   * What is `host:port` to a caller in `callerNamespace`? `host` is an IP address (v4, v6,
   * bracketed v6, IPv4-mapped v6) or a DNS name; short Service names are taken relative to the
   * caller's namespace, in the order the pod's resolv.conf search list would try them.
   */
  resolve(dest: { host: string; port: number }, callerNamespace: string): Resolution {
    const { port } = dest;
    const host = dest.host.trim().toLowerCase().replace(/\.$/, '');
    const ip = canonicalIp(host);
    if (ip !== undefined) return this.#resolveAddress(ip, port);
    return this.#resolveName(host, port, callerNamespace);
  }

  #resolveAddress(ip: string, port: number): Resolution {
    const services = this.#servicesByIp.get(ip);
    if (services !== undefined) {
      // Two Services never share a cluster IP; externalIPs might. Several → refuse, not guess.
      if (services.size > 1) return this.#unknown(`${services.size} Services claim ${ip}`, { service: '' });
      return this.#resolveService(this.#services.get([...services][0]!)!, port);
    }
    const pods = this.#livePodsAt(ip);
    if (pods.length > 0) return this.#resolvePods(ip, pods, port);
    if (this.#cidrs.has(ip)) return this.#unknown(`${ip} is in the cluster's CIDRs but no Pod or Service has it (yet)`);
    return this.#answer('external', { reason: `${ip} is outside the cluster` });
  }

  #resolveName(host: string, port: number, callerNs: string): Resolution {
    const labels = host.split('.');
    const svcSuffix = `svc.${this.#clusterDomain}`.split('.');
    const endsWith = (suffix: string[]) => labels.length > suffix.length && suffix.every((l, i) => labels[labels.length - suffix.length + i] === l);

    // Fully or partly qualified cluster names: <svc>.<ns>.svc[.<domain>], <host>.<svc>.<ns>.svc[.<domain>].
    const rest = endsWith(svcSuffix) ? labels.slice(0, -svcSuffix.length) : endsWith(['svc']) ? labels.slice(0, -1) : undefined;
    if (rest !== undefined) {
      if (rest.length === 2) return this.#serviceByName(rest[1]!, rest[0]!, port) ?? this.#unknown(`no Service ${rest[0]}.${rest[1]}`);
      if (rest.length === 3) return this.#podByDnsName(rest.join('.'), port) ?? this.#unknown(`no Pod named ${rest.join('.')}`);
      return this.#unknown(`${host} is not a Service or Pod name`);
    }
    if (endsWith(this.#clusterDomain.split('.'))) return this.#unknown(`${host} is a cluster name meshlet does not resolve`);

    // Relative names, in resolv.conf order: <callerNs>.svc.<domain>, then svc.<domain>.
    if (labels.length === 1) return this.#serviceByName(callerNs, labels[0]!, port) ?? this.#unknown(`no Service ${labels[0]} in the caller's namespace ${callerNs}`);
    if (labels.length === 2) {
      return this.#podByDnsName(`${labels[0]}.${labels[1]}.${callerNs}`, port) ?? this.#serviceByName(labels[1]!, labels[0]!, port) ?? this.#answer('external', { reason: `${host} is not a Service of the cluster` });
    }
    if (labels.length === 3) return this.#podByDnsName(host, port) ?? this.#answer('external', { reason: `${host} is not a name of the cluster` });
    return this.#answer('external', { reason: `${host} is not a name of the cluster` });
  }

  #serviceByName(namespace: string, name: string, port: number): Resolution | undefined {
    const svc = this.#services.get(`${namespace}/${name}`);
    return svc === undefined ? undefined : this.#resolveService(svc, port);
  }

  #podByDnsName(name: string, port: number): Resolution | undefined {
    const keys = this.#podsByDnsName.get(name);
    if (keys === undefined) return undefined;
    const pods = [...keys].map((k) => this.#pods.get(k)!).filter((p) => !isTerminal(p) && p.ips.length > 0);
    if (pods.length === 0) return undefined;
    if (pods.length > 1) return this.#unknown(`${pods.length} Pods answer to ${name}`);
    return this.#resolvePods(pods[0]!.ips[0]!, pods, port);
  }

  #resolveService(svc: ServiceRecord, port: number): Resolution {
    const service = `${svc.name}.${svc.namespace}`;
    if (svc.externalName !== '') return this.#answer('external', { service, externalName: svc.externalName, reason: `ExternalName Service for ${svc.externalName}` });
    const sp = svc.ports.find((p) => p.port === port);
    // A headless Service's name resolves to the pods themselves: the port is theirs, not the Service's.
    if (sp === undefined && !svc.headless) return this.#unknown(`Service ${service} has no TCP port ${port}`, { service });
    const protocol = sp ? protocolFromServicePort(sp) : this.#protocolFromSlices(svc, port);
    const members: { address: string; port: number; ready: boolean; member: Member }[] = [];
    for (const sliceKey of this.#slicesByService.get(`${svc.namespace}/${svc.name}`) ?? []) {
      const slice = this.#slices.get(sliceKey)!;
      const slicePort = sp ? slice.ports.find((p) => p.name === sp.name) : slice.ports.find((p) => p.port === port);
      if (slicePort === undefined) continue;
      for (const e of slice.endpoints) {
        for (const address of e.addresses) members.push({ address, port: slicePort.port, ready: e.ready, member: this.#member(slice.namespace, e.pod, address) });
      }
    }
    if (members.length === 0) return this.#unknown(`Service ${service} has no endpoints for port ${port}`, { service, protocol });
    const unknown = members.find((m) => m.member.kind === 'unknown');
    if (unknown) return this.#unknown(`Service ${service}: ${(unknown.member as { why: string }).why}`, { service, protocol });
    const meshed = members.filter((m) => m.member.kind === 'meshed').length;
    const kind: ResolutionKind = meshed === members.length ? 'meshed' : meshed === 0 ? 'unmeshed' : 'mixed';
    return this.#withEndpoints(kind, members, { service, protocol, reason: `Service ${service}: ${meshed} of ${members.length} endpoints meshed` });
  }

  /** One endpoint of a slice: its Pod (by targetRef, else by address) and whether it is meshed. */
  #member(namespace: string, podName: string, address: string): Member {
    if (podName !== '') {
      const pod = this.#pods.get(`${namespace}/${podName}`);
      if (pod === undefined) return { kind: 'unknown', why: `endpoint ${address} names Pod ${namespace}/${podName}, not seen (yet)` };
      return this.#podMember(pod);
    }
    const pods = this.#livePodsAt(address);
    if (pods.length === 1) return this.#podMember(pods[0]!);
    if (pods.length > 1) return { kind: 'unknown', why: `${pods.length} Pods have the endpoint address ${address}` };
    // Not a pod: a node, a VM, something outside. Inside the CIDRs it may be a pod not seen yet.
    if (this.#cidrs.has(address)) return { kind: 'unknown', why: `endpoint ${address} is in the cluster's CIDRs but no Pod has it (yet)` };
    return { kind: 'unmeshed', pod: undefined };
  }

  #podMember(pod: PodRecord): Member {
    if (!pod.meshed) return { kind: 'unmeshed', pod };
    const identity = this.#identityOf(pod);
    return identity === undefined ? { kind: 'unknown', why: `Pod ${pod.namespace}/${pod.name} has no valid SPIFFE ID` } : { kind: 'meshed', identity, pod };
  }

  #identityOf(pod: PodRecord): string | undefined {
    try {
      return workloadSpiffeId(this.#trustDomain, pod.namespace, pod.serviceAccount).id;
    } catch {
      return undefined;
    }
  }

  /** Pods at `ip` that may still receive traffic. Host-network pods share their node's address. */
  #livePodsAt(ip: string): PodRecord[] {
    const keys = this.#podsByIp.get(ip);
    if (keys === undefined) return [];
    const pods = [...keys].map((k) => this.#pods.get(k)!).filter((p) => !isTerminal(p));
    const own = pods.filter((p) => !p.hostNetwork);
    return own.length > 0 ? own : pods.slice(0, 1);
  }

  #resolvePods(ip: string, pods: PodRecord[], port: number): Resolution {
    if (pods.length > 1) return this.#unknown(`${pods.length} Pods have the address ${ip}`);
    const pod = pods[0]!;
    const member = pod.hostNetwork ? ({ kind: 'unmeshed', pod } as const) : this.#podMember(pod);
    if (member.kind === 'unknown') return this.#unknown(member.why);
    const protocol = this.#protocolForPodPort(pod, ip, port);
    return this.#withEndpoints(member.kind, [{ address: ip, port, ready: pod.ready, member }], { protocol, reason: `Pod ${pod.namespace}/${pod.name}${pod.hostNetwork ? ' (host network)' : ''}` });
  }

  /**
   * The protocol of a pod's port, from the Service port that sends traffic to it: first the
   * EndpointSlices that list this address and port (their ports carry the resolved target port
   * and the Service port's name), then the Services selecting the pod whose targetPort is this
   * port (a named targetPort through the pod's container ports), for slices not written yet.
   * Services that disagree → 'detect' (the sidecar's first-bytes detection decides).
   */
  #protocolForPodPort(pod: PodRecord, ip: string, port: number): PortProtocolDecision {
    const found = new Set<PortProtocolDecision>();
    for (const sliceKey of this.#slicesByIp.get(ip) ?? []) {
      const slice = this.#slices.get(sliceKey)!;
      const svc = this.#services.get(`${slice.namespace}/${slice.service}`);
      for (const p of slice.ports) {
        if (p.port !== port) continue;
        const sp = svc?.ports.find((s) => s.name === p.name);
        found.add(protocolFromServicePort(sp ?? { name: p.name, appProtocol: p.appProtocol, port: p.port }));
      }
    }
    if (found.size === 0) {
      for (const key of this.#servicesByNamespace.get(pod.namespace) ?? []) {
        const svc = this.#services.get(key)!;
        if (svc.selector === undefined || !Object.entries(svc.selector).every(([k, v]) => pod.labels[k] === v)) continue;
        for (const sp of svc.ports) if (targetPortOf(sp, pod) === port) found.add(protocolFromServicePort(sp));
      }
    }
    return found.size === 1 ? [...found][0]! : 'detect';
  }

  #protocolFromSlices(svc: ServiceRecord, port: number): PortProtocolDecision {
    const found = new Set<PortProtocolDecision>();
    for (const sliceKey of this.#slicesByService.get(`${svc.namespace}/${svc.name}`) ?? []) {
      for (const p of this.#slices.get(sliceKey)!.ports) if (p.port === port) found.add(protocolFromServicePort(p));
    }
    return found.size === 1 ? [...found][0]! : 'detect';
  }

  #withEndpoints(kind: ResolutionKind, members: { address: string; port: number; ready: boolean; member: Member }[], extra: Partial<Resolution>): Resolution {
    const identities = [...new Set(members.flatMap((m) => (m.member.kind === 'meshed' ? [m.member.identity] : [])))].sort();
    if (identities.length > this.#maxIdentities) {
      return this.#unknown(`more than ${this.#maxIdentities} distinct identities behind one destination`, { service: extra.service ?? '', protocol: extra.protocol ?? 'detect' });
    }
    // Ready endpoints first, so a truncated list still holds the ones that take traffic.
    const ordered = [...members].sort((a, b) => Number(b.ready) - Number(a.ready));
    const endpoints = ordered.slice(0, this.#maxEndpoints).map((m) => ({ address: m.address, port: m.port, identity: m.member.kind === 'meshed' ? m.member.identity : '', ready: m.ready }));
    return this.#answer(kind, { ...extra, identities, endpoints, endpointsTruncated: members.length > endpoints.length });
  }

  #unknown(reason: string, extra: Partial<Resolution> = {}): Resolution {
    return this.#answer('unknown', { ...extra, reason });
  }

  #answer(kind: ResolutionKind, extra: Partial<Resolution>): Resolution {
    return { kind, identities: [], protocol: 'detect', endpoints: [], endpointsTruncated: false, service: '', externalName: '', reason: '', ...extra };
  }
}

/** A Service port's target port on `pod`: the number, or the pod's container port of that name. */
export function targetPortOf(sp: ServicePortRecord, pod: PodRecord): number | undefined {
  return typeof sp.targetPort === 'number' ? sp.targetPort : pod.namedPorts[sp.targetPort];
}
