// The discovery model (src/control-plane/discovery/mesh-view.ts): API objects in, answers out.
// Table-driven over the destinations a sidecar asks about; docs/discovery.md has the same rules.
import { describe, expect, it } from 'vitest';
import { canonicalIp } from '../../../src/control-plane/discovery/addresses.ts';
import { MeshView, type Resolution } from '../../../src/control-plane/discovery/mesh-view.ts';
import { endpointSliceRecord, podRecord, serviceRecord } from '../../../src/control-plane/discovery/objects.ts';

const TD = 'mesh.test';
const id = (ns: string, sa: string) => `spiffe://${TD}/ns/${ns}/sa/${sa}`;

function pod(ns: string, name: string, o: { ip?: string | string[]; sa?: string; meshed?: boolean | 'container'; ready?: boolean; phase?: string; labels?: Record<string, string>; ports?: { name: string; containerPort: number }[]; hostname?: string; subdomain?: string; hostNetwork?: boolean } = {}) {
  const ips = o.ip === undefined ? [] : Array.isArray(o.ip) ? o.ip : [o.ip];
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns, labels: o.labels ?? {}, annotations: o.meshed === true ? { 'meshlet.io/status': '{"version":1}' } : {} },
    spec: {
      serviceAccountName: o.sa ?? name,
      hostNetwork: o.hostNetwork,
      hostname: o.hostname,
      subdomain: o.subdomain,
      containers: [{ name: 'app', ports: o.ports ?? [] }, ...(o.meshed === 'container' ? [{ name: 'meshlet-proxy' }] : [])],
    },
    status: {
      phase: o.phase ?? 'Running',
      ...(ips.length ? { podIP: ips[0], podIPs: ips.map((ip) => ({ ip })) } : {}),
      conditions: [{ type: 'Ready', status: o.ready === false ? 'False' : 'True' }],
    },
  };
}

function service(ns: string, name: string, o: { ip?: string | string[]; ports: { name?: string; port: number; targetPort?: number | string; appProtocol?: string }[]; selector?: Record<string, string>; externalName?: string }) {
  const ips = o.ip === undefined ? [] : Array.isArray(o.ip) ? o.ip : [o.ip];
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: ns },
    spec: o.externalName ? { type: 'ExternalName', externalName: o.externalName } : { type: 'ClusterIP', clusterIP: ips[0], clusterIPs: ips, selector: o.selector, ports: o.ports.map((p) => ({ protocol: 'TCP', ...p })) },
  };
}

function slice(ns: string, name: string, svc: string, ports: { name?: string; port: number; appProtocol?: string }[], endpoints: { ip: string; pod?: string; ready?: boolean }[], addressType = 'IPv4') {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace: ns, labels: { 'kubernetes.io/service-name': svc } },
    addressType,
    ports: ports.map((p) => ({ protocol: 'TCP', name: p.name ?? '', port: p.port, ...(p.appProtocol ? { appProtocol: p.appProtocol } : {}) })),
    endpoints: endpoints.map((e) => ({ addresses: [e.ip], conditions: { ready: e.ready ?? true }, ...(e.pod ? { targetRef: { kind: 'Pod', name: e.pod, namespace: ns } } : {}) })),
  };
}

/** The cluster every case below asks about. */
function cluster(): MeshView {
  const view = new MeshView({ trustDomain: TD, clusterDomain: 'cluster.local', clusterCidrs: ['10.244.0.0/16', '10.96.0.0/16', 'fd00:10:244::/56', 'fd00:10:96::/112'] });
  const pods = [
    pod('shop', 'orders-1', { ip: ['10.244.1.10', 'fd00:10:244::a'], sa: 'orders', meshed: true, labels: { app: 'orders' }, ports: [{ name: 'api', containerPort: 8080 }] }),
    pod('shop', 'orders-2', { ip: '10.244.1.11', sa: 'orders', meshed: 'container', labels: { app: 'orders' }, ports: [{ name: 'api', containerPort: 8080 }] }),
    pod('shop', 'legacy-1', { ip: '10.244.1.20', sa: 'legacy', labels: { app: 'legacy' } }),
    pod('shop', 'cart-1', { ip: '10.244.1.30', sa: 'cart', meshed: true, labels: { app: 'cart' } }),
    pod('shop', 'cart-old', { ip: '10.244.1.31', sa: 'cart-v1', labels: { app: 'cart' } }),
    pod('shop', 'payments-new', { ip: '10.244.1.40', sa: 'payments', meshed: true, ready: false, labels: { app: 'payments' } }),
    pod('shop', 'payments-old', { ip: '10.244.1.41', sa: 'payments', labels: { app: 'payments' } }),
    pod('shop', 'done', { ip: '10.244.1.50', sa: 'batch', meshed: true, phase: 'Succeeded' }),
    pod('shop', 'kafka-0', { ip: '10.244.1.60', sa: 'kafka', meshed: true, hostname: 'kafka-0', subdomain: 'kafka' }),
    pod('kube-system', 'node-agent', { ip: '192.168.0.5', hostNetwork: true }),
    pod('web', 'frontend', { ip: '10.244.2.10', sa: 'frontend', meshed: true }),
  ];
  view.replacePods(pods.map((p) => podRecord(p)!));
  const services = [
    service('shop', 'orders', { ip: ['10.96.0.10', 'fd00:10:96::10'], selector: { app: 'orders' }, ports: [{ name: 'http', port: 80, targetPort: 'api' }, { name: 'metrics', port: 9000, targetPort: 9000, appProtocol: 'kubernetes.io/h2c' }] }),
    service('shop', 'legacy', { ip: '10.96.0.20', selector: { app: 'legacy' }, ports: [{ name: 'tcp-db', port: 5432 }] }),
    service('shop', 'cart', { ip: '10.96.0.30', selector: { app: 'cart' }, ports: [{ port: 80, appProtocol: 'grpc' }] }),
    service('shop', 'payments', { ip: '10.96.0.40', selector: { app: 'payments' }, ports: [{ name: 'http', port: 80 }] }),
    service('shop', 'empty', { ip: '10.96.0.50', selector: { app: 'nothing' }, ports: [{ name: 'http', port: 80 }] }),
    service('shop', 'ghost', { ip: '10.96.0.60', selector: { app: 'ghost' }, ports: [{ name: 'http', port: 80 }] }),
    service('shop', 'db', { ip: '10.96.0.70', ports: [{ name: 'tcp', port: 5432 }] }),
    service('shop', 'search', { externalName: 'search.example.com', ports: [] }),
    service('web', 'orders', { ip: '10.96.1.10', selector: { app: 'web-orders' }, ports: [{ name: 'http', port: 80 }] }),
  ];
  view.replaceServices(services.map((s) => serviceRecord(s)!));
  const slices = [
    slice('shop', 'orders-v4', 'orders', [{ name: 'http', port: 8080 }, { name: 'metrics', port: 9000, appProtocol: 'kubernetes.io/h2c' }], [{ ip: '10.244.1.10', pod: 'orders-1' }, { ip: '10.244.1.11', pod: 'orders-2' }]),
    slice('shop', 'orders-v6', 'orders', [{ name: 'http', port: 8080 }], [{ ip: 'fd00:10:244:0:0:0:0:a', pod: 'orders-1' }], 'IPv6'),
    slice('shop', 'legacy-x', 'legacy', [{ name: 'tcp-db', port: 5432 }], [{ ip: '10.244.1.20', pod: 'legacy-1' }]),
    slice('shop', 'cart-x', 'cart', [{ port: 80 }], [{ ip: '10.244.1.30', pod: 'cart-1' }, { ip: '10.244.1.31', pod: 'cart-old' }]),
    slice('shop', 'payments-x', 'payments', [{ name: 'http', port: 80 }], [{ ip: '10.244.1.40', pod: 'payments-new', ready: false }, { ip: '10.244.1.41', pod: 'payments-old' }]),
    slice('shop', 'ghost-x', 'ghost', [{ name: 'http', port: 80 }], [{ ip: '10.244.9.9', pod: 'not-seen-yet' }]),
    // A Service without a selector: endpoints someone else manages (a database outside).
    slice('shop', 'db-x', 'db', [{ name: 'tcp', port: 5432 }], [{ ip: '172.16.5.5' }]),
    slice('web', 'orders-x', 'orders', [{ name: 'http', port: 80 }], [{ ip: '10.244.2.10', pod: 'frontend' }]),
  ];
  view.replaceEndpointSlices(slices.map((s) => endpointSliceRecord(s)!));
  return view;
}

type Case = [what: string, host: string, port: number, expected: Partial<Resolution> & { endpointIds?: string[] }];

const cases: Case[] = [
  ['meshed pod IP', '10.244.1.10', 8080, { kind: 'meshed', identities: [id('shop', 'orders')], protocol: 'http' }],
  ['meshed pod IPv6 (any spelling)', 'fd00:10:244:0::A', 8080, { kind: 'meshed', identities: [id('shop', 'orders')] }],
  ['meshed pod IPv6 in brackets', '[fd00:10:244::a]', 8080, { kind: 'meshed' }],
  ['IPv4-mapped IPv6 of a meshed pod', '::ffff:10.244.1.10', 8080, { kind: 'meshed' }],
  ['meshed by the sidecar container alone (annotation removed)', '10.244.1.11', 8080, { kind: 'meshed', identities: [id('shop', 'orders')] }],
  ['unmeshed pod', '10.244.1.20', 5432, { kind: 'unmeshed', identities: [], protocol: 'tcp', endpointIds: [''] }],
  ['service all meshed, by ClusterIP', '10.96.0.10', 80, { kind: 'meshed', identities: [id('shop', 'orders')], protocol: 'http', service: 'orders.shop' }],
  ['service all meshed, IPv6 ClusterIP', 'fd00:10:96::10', 80, { kind: 'meshed', service: 'orders.shop' }],
  ['service port appProtocol', '10.96.0.10', 9000, { kind: 'meshed', protocol: 'h2c' }],
  ['named targetPort: endpoints on the container port', 'orders.shop', 80, { kind: 'meshed', endpoints: [{ address: '10.244.1.10', port: 8080, identity: id('shop', 'orders'), ready: true }, { address: '10.244.1.11', port: 8080, identity: id('shop', 'orders'), ready: true }, { address: 'fd00:10:244::a', port: 8080, identity: id('shop', 'orders'), ready: true }] }],
  ['service unmeshed', 'legacy', 5432, { kind: 'unmeshed', identities: [], protocol: 'tcp' }],
  ['service mixed: per-endpoint identities', 'cart.shop.svc', 80, { kind: 'mixed', identities: [id('shop', 'cart')], protocol: 'grpc', endpointIds: [id('shop', 'cart'), ''] }],
  ['ready endpoints unmeshed but a meshed one starting: mixed, never unmeshed', 'payments', 80, { kind: 'mixed', identities: [id('shop', 'payments')] }],
  ['service with no endpoints: unknown', 'empty', 80, { kind: 'unknown' }],
  ['endpoint naming a Pod not seen yet: unknown', 'ghost', 80, { kind: 'unknown' }],
  ['service port that does not exist: unknown', 'orders', 81, { kind: 'unknown', service: 'orders.shop' }],
  ['selector-less Service with an outside endpoint: unmeshed', 'db.shop.svc.cluster.local', 5432, { kind: 'unmeshed', endpoints: [{ address: '172.16.5.5', port: 5432, identity: '', ready: true }] }],
  ['ExternalName Service: external', 'search', 443, { kind: 'external', externalName: 'search.example.com' }],
  ['short name is the caller\'s namespace', 'orders', 80, { kind: 'meshed', service: 'orders.shop' }],
  ['svc.ns', 'orders.web', 80, { kind: 'meshed', service: 'orders.web', identities: [id('web', 'frontend')] }],
  ['svc.ns.svc', 'orders.web.svc', 80, { service: 'orders.web' }],
  ['svc.ns.svc.<cluster domain>, trailing dot, capitals', 'Orders.Web.svc.cluster.local.', 80, { service: 'orders.web' }],
  ['headless per-pod name', 'kafka-0.kafka.shop.svc.cluster.local', 9092, { kind: 'meshed', identities: [id('shop', 'kafka')] }],
  ['per-pod name relative to the caller', 'kafka-0.kafka', 9092, { kind: 'meshed' }],
  ['missing Service under .svc: unknown', 'nope.shop.svc.cluster.local', 80, { kind: 'unknown' }],
  ['missing short name: unknown', 'nope', 80, { kind: 'unknown' }],
  ['two labels that are not a Service: external', 'example.com', 443, { kind: 'external' }],
  ['a public name: external', 'api.github.com', 443, { kind: 'external' }],
  ['unknown in-cluster pod address: unknown', '10.244.7.7', 80, { kind: 'unknown' }],
  ['unknown in-cluster service address: unknown', '10.96.9.9', 80, { kind: 'unknown' }],
  ['unknown in-cluster IPv6: unknown', 'fd00:10:244::ffff', 80, { kind: 'unknown' }],
  ['external address', '93.184.216.34', 443, { kind: 'external' }],
  ['external IPv6', '2606:2800:220:1::1', 443, { kind: 'external' }],
  ['terminated pod\'s address: no longer its', '10.244.1.50', 80, { kind: 'unknown' }],
  ['host-network pod (node address): unmeshed', '192.168.0.5', 10250, { kind: 'unmeshed' }],
];

describe('MeshView.resolve (caller in namespace shop)', () => {
  const view = cluster();
  for (const [what, host, port, expected] of cases) {
    it(`${what}: ${host}:${port} → ${expected.kind ?? ''}`, () => {
      const r = view.resolve({ host, port }, 'shop');
      const { endpointIds, ...rest } = expected;
      expect(r, r.reason).toMatchObject(rest);
      if (endpointIds) expect(r.endpoints.map((e) => e.identity)).toEqual(endpointIds);
      // Never plaintext to a meshed member: only `mixed` lists both kinds.
      if (r.kind === 'unmeshed') expect(r.identities).toEqual([]);
      if (r.kind === 'meshed') expect(r.endpoints.every((e) => e.identity !== '')).toBe(true);
    });
  }
});

describe('MeshView updates', () => {
  it('a pod deleted and recreated without the sidecar becomes unmeshed; back with it, meshed', () => {
    const view = cluster();
    expect(view.resolve({ host: 'orders', port: 80 }, 'shop').kind).toBe('meshed');
    view.deletePod('shop/orders-2');
    // The slice still names it: unknown until the slice catches up (fail closed in between).
    expect(view.resolve({ host: 'orders', port: 80 }, 'shop').kind).toBe('unknown');
    view.upsertPod(podRecord(pod('shop', 'orders-2', { ip: '10.244.1.11', sa: 'orders', labels: { app: 'orders' } }))!);
    expect(view.resolve({ host: 'orders', port: 80 }, 'shop').kind).toBe('mixed');
    expect(view.resolve({ host: '10.244.1.11', port: 8080 }, 'shop').kind).toBe('unmeshed');
    view.upsertPod(podRecord(pod('shop', 'orders-2', { ip: '10.244.1.11', sa: 'orders', meshed: true, labels: { app: 'orders' } }))!);
    expect(view.resolve({ host: '10.244.1.11', port: 8080 }, 'shop').kind).toBe('meshed');
  });

  it('a re-list drops what is gone', () => {
    const view = cluster();
    view.replaceServices([]);
    expect(view.resolve({ host: '10.96.0.10', port: 80 }, 'shop').kind).toBe('unknown');
    expect(view.counts.services).toBe(0);
  });

  it('protocol of a pod port without a slice: a selecting Service with a named targetPort', () => {
    const view = cluster();
    view.replaceEndpointSlices([]);
    expect(view.resolve({ host: '10.244.1.11', port: 8080 }, 'shop')).toMatchObject({ kind: 'meshed', protocol: 'http' });
  });

  it('bounds: endpoints listed at most maxEndpoints, ready first; too many identities is unknown', () => {
    const view = new MeshView({ trustDomain: TD, clusterDomain: 'cluster.local', clusterCidrs: ['10.0.0.0/8'], maxEndpoints: 3, maxIdentities: 4 });
    const eps = Array.from({ length: 6 }, (_, i) => ({ ip: `10.0.0.${i + 1}`, pod: `p${i}`, ready: i >= 3 }));
    view.replacePods(eps.map((e, i) => podRecord(pod('a', e.pod, { ip: e.ip, sa: i < 2 ? 'one' : 'two', meshed: true }))!));
    view.replaceServices([serviceRecord(service('a', 's', { ip: '10.1.0.1', ports: [{ name: 'http', port: 80 }] }))!]);
    view.replaceEndpointSlices([endpointSliceRecord(slice('a', 's-1', 's', [{ name: 'http', port: 80 }], eps))!]);
    const r = view.resolve({ host: 's.a', port: 80 }, 'x');
    expect(r).toMatchObject({ kind: 'meshed', endpointsTruncated: true, identities: [id('a', 'one'), id('a', 'two')] });
    expect(r.endpoints.map((e) => e.ready)).toEqual([true, true, true]);
    view.replacePods(eps.map((e, i) => podRecord(pod('a', e.pod, { ip: e.ip, sa: `sa${i}`, meshed: true }))!));
    expect(view.resolve({ host: 's.a', port: 80 }, 'x').kind).toBe('unknown');
  });
});

describe('canonicalIp', () => {
  it.each([
    ['10.1.2.3', '10.1.2.3'],
    ['FD00::A', 'fd00::a'],
    ['fd00:0:0:0:0:0:0:a', 'fd00::a'],
    ['[::1]', '::1'],
    ['::ffff:10.1.2.3', '10.1.2.3'],
    ['fe80::1%eth0', undefined],
    ['example.com', undefined],
    ['010.1.2.3', undefined],
  ])('%s → %s', (raw, expected) => expect(canonicalIp(raw)).toBe(expected));
});
