import { ANNOTATIONS } from '../injector/patch/annotations.ts';
import { PROXY_CONTAINER } from '../injector/patch/pod-layout.ts';
import { canonicalIp } from './addresses.ts';

/**
 * The few fields of Pods, Services and EndpointSlices that discovery needs, taken from the
 * API server's JSON as it arrives (list items and watch events), so the full objects — a Pod
 * is kilobytes — are never kept. Pure functions; anything malformed is skipped field by
 * field, never thrown: one odd object must not stop the watch.
 */
export interface PodRecord {
  namespace: string;
  name: string;
  serviceAccount: string;
  /** status.podIPs (or status.podIP), canonical (addresses.ts). Empty until the pod has one. */
  ips: string[];
  phase: string;
  /** The Ready condition is True. */
  ready: boolean;
  /**
   * meshlet injected it: the `meshlet.io/status` annotation the injector writes, OR the
   * sidecar container (`meshlet-proxy`, in containers or initContainers) in its spec. Either
   * signal is enough: annotations are mutable, so removing one from a meshed pod must not
   * turn it into a plaintext destination; the container list cannot change after creation.
   */
  meshed: boolean;
  hostNetwork: boolean;
  labels: Readonly<Record<string, string>>;
  /** spec.hostname / spec.subdomain: the pod's own DNS name under a headless Service. */
  hostname: string;
  subdomain: string;
  /** Named TCP container ports (for a Service's named targetPort). */
  namedPorts: Readonly<Record<string, number>>;
}

export interface ServicePortRecord {
  name: string;
  port: number;
  /** A number, or a container port name. */
  targetPort: number | string;
  appProtocol: string;
}

export interface ServiceRecord {
  namespace: string;
  name: string;
  type: string;
  /** spec.clusterIPs (canonical), plus spec.externalIPs and status.loadBalancer.ingress[].ip: every address kube-proxy answers for this Service. */
  ips: string[];
  headless: boolean;
  externalName: string;
  /** spec.selector; undefined when the Service has none (its EndpointSlices are made by someone else). */
  selector: Readonly<Record<string, string>> | undefined;
  /** TCP ports only: the mesh intercepts TCP. */
  ports: ServicePortRecord[];
}

export interface SlicePortRecord {
  name: string;
  port: number;
  appProtocol: string;
}

export interface SliceEndpointRecord {
  addresses: string[];
  /** conditions.ready; a missing condition means ready (the API's rule). */
  ready: boolean;
  /** targetRef.name when targetRef.kind is Pod (same namespace as the slice). */
  pod: string;
}

export interface EndpointSliceRecord {
  namespace: string;
  name: string;
  /** The `kubernetes.io/service-name` label: the Service these endpoints belong to. */
  service: string;
  addressType: string;
  ports: SlicePortRecord[];
  endpoints: SliceEndpointRecord[];
}

type Json = Record<string, unknown>;

const obj = (v: unknown): Json => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const int = (v: unknown): number => (typeof v === 'number' && Number.isInteger(v) ? v : 0);

function stringMap(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(obj(v))) if (typeof val === 'string') out[k] = val;
  return out;
}

/** namespace/name of any object, or undefined when it has neither. */
export function objectKey(o: unknown): string | undefined {
  const meta = obj(obj(o)['metadata']);
  const name = str(meta['name']);
  return name === '' ? undefined : `${str(meta['namespace'])}/${name}`;
}

const isTcp = (p: Json): boolean => (p['protocol'] ?? 'TCP') === 'TCP';

export function podRecord(o: unknown): PodRecord | undefined {
  const pod = obj(o);
  const meta = obj(pod['metadata']);
  const spec = obj(pod['spec']);
  const status = obj(pod['status']);
  const name = str(meta['name']);
  if (name === '') return undefined;
  const ips = new Set<string>();
  for (const entry of arr(status['podIPs'])) {
    const ip = canonicalIp(str(obj(entry)['ip']));
    if (ip) ips.add(ip);
  }
  const single = canonicalIp(str(status['podIP']));
  if (single) ips.add(single);
  const containers = [...arr(spec['containers']), ...arr(spec['initContainers'])].map(obj);
  const namedPorts: Record<string, number> = {};
  for (const c of arr(spec['containers']).map(obj)) {
    for (const p of arr(c['ports']).map(obj)) {
      const portName = str(p['name']);
      if (portName !== '' && isTcp(p) && !(portName in namedPorts)) namedPorts[portName] = int(p['containerPort']);
    }
  }
  const annotations = obj(meta['annotations']);
  return {
    namespace: str(meta['namespace']),
    name,
    serviceAccount: str(spec['serviceAccountName']) || 'default',
    ips: [...ips],
    phase: str(status['phase']),
    ready: arr(status['conditions']).some((c) => obj(c)['type'] === 'Ready' && obj(c)['status'] === 'True'),
    meshed: typeof annotations[ANNOTATIONS.status] === 'string' || containers.some((c) => c['name'] === PROXY_CONTAINER),
    hostNetwork: spec['hostNetwork'] === true,
    labels: stringMap(meta['labels']),
    hostname: str(spec['hostname']),
    subdomain: str(spec['subdomain']),
    namedPorts,
  };
}

export function serviceRecord(o: unknown): ServiceRecord | undefined {
  const svc = obj(o);
  const meta = obj(svc['metadata']);
  const spec = obj(svc['spec']);
  const name = str(meta['name']);
  if (name === '') return undefined;
  const type = str(spec['type']) || 'ClusterIP';
  const clusterIPs = arr(spec['clusterIPs']).map(str);
  if (clusterIPs.length === 0 && str(spec['clusterIP']) !== '') clusterIPs.push(str(spec['clusterIP']));
  const headless = clusterIPs.includes('None');
  const ips = new Set<string>();
  const candidates = [...clusterIPs, ...arr(spec['externalIPs']).map(str), ...arr(obj(obj(svc['status'])['loadBalancer'])['ingress']).map((i) => str(obj(i)['ip']))];
  for (const raw of candidates) {
    const ip = canonicalIp(raw);
    if (ip) ips.add(ip);
  }
  const selector = spec['selector'] === undefined || spec['selector'] === null ? undefined : stringMap(spec['selector']);
  const ports: ServicePortRecord[] = [];
  for (const p of arr(spec['ports']).map(obj)) {
    if (!isTcp(p)) continue;
    const port = int(p['port']);
    const target = p['targetPort'];
    ports.push({
      name: str(p['name']),
      port,
      // Unset targetPort defaults to the port (the API server fills it in; a stand-in might not).
      targetPort: typeof target === 'string' && target !== '' ? (/^\d+$/.test(target) ? Number(target) : target) : int(target) || port,
      appProtocol: str(p['appProtocol']),
    });
  }
  return {
    namespace: str(meta['namespace']),
    name,
    type,
    ips: [...ips],
    headless,
    externalName: type === 'ExternalName' ? str(spec['externalName']) : '',
    selector: selector && Object.keys(selector).length > 0 ? selector : undefined,
    ports,
  };
}

export function endpointSliceRecord(o: unknown): EndpointSliceRecord | undefined {
  const slice = obj(o);
  const meta = obj(slice['metadata']);
  const name = str(meta['name']);
  if (name === '') return undefined;
  const ports: SlicePortRecord[] = [];
  for (const p of arr(slice['ports']).map(obj)) {
    if (!isTcp(p)) continue;
    // A slice port without a number means "all ports" (a Service without ports); nothing to map.
    if (int(p['port']) === 0) continue;
    ports.push({ name: str(p['name']), port: int(p['port']), appProtocol: str(p['appProtocol']) });
  }
  const endpoints: SliceEndpointRecord[] = [];
  for (const e of arr(slice['endpoints']).map(obj)) {
    const addresses = arr(e['addresses'])
      .map((a) => canonicalIp(str(a)))
      .filter((a): a is string => a !== undefined);
    if (addresses.length === 0) continue;
    const ref = obj(e['targetRef']);
    const ready = obj(e['conditions'])['ready'];
    endpoints.push({ addresses, ready: ready !== false, pod: ref['kind'] === 'Pod' ? str(ref['name']) : '' });
  }
  return {
    namespace: str(meta['namespace']),
    name,
    service: str(obj(meta['labels'])['kubernetes.io/service-name']),
    addressType: str(slice['addressType']),
    ports,
    endpoints,
  };
}
