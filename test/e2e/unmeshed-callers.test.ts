// Issue 14 item 7: callers every cluster has outside the mesh — an ingress controller, the API
// server calling a webhook server, Prometheus — need a documented way in (docs/unmeshed-callers.md).
// Here, with real interception: a PERMISSIVE port admits a plaintext caller as
// `unauthenticated` only on the routes the policy opens to it, a meshed caller keeps its
// identity on the same port, and Prometheus scrapes the admin port. (Skipping a port from
// interception, the way for webhook servers, is the iptables rules' own test:
// test/unit/injector/iptables-rules and the every-skip fixtures.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster, e2eSkipped, type Pod } from './harness/index.ts';
import { callFrom } from './support/app-calls.ts';
import { startMeshedPod, type MeshedPod } from './support/meshed-pod.ts';
import { SvidVolumes } from './support/svid-volume.ts';

const POLICY = `apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: web }
spec:
  servers:
    - name: web
      selector: { serviceAccount: web }
      ports:
        - { port: 8080, protocol: http }
      routes:
        - name: public
          path: { prefix: /public }
          callers:
            - unauthenticated: true
            - anyAuthenticated: true
        - name: internal
          path: { prefix: /internal }
          callers:
            - namespace: shop
`;

interface Seen {
  path: string;
  peer: string | null;
}

describe.skipIf(e2eSkipped('unmeshed callers e2e (network-namespace pods)'))('unmeshed callers: a documented way in', () => {
  let cluster: Cluster;
  let web: MeshedPod;
  let meshedCaller: MeshedPod;
  let ingress: Pod;

  beforeAll(async () => {
    cluster = await Cluster.create();
    const svids = await SvidVolumes.create();
    web = await startMeshedPod(cluster, svids, {
      name: 'web',
      namespace: 'shop',
      serviceAccount: 'web',
      declaredPorts: [8080],
      policy: POLICY,
      annotations: { 'meshlet.io/permissive-ports': '8080' },
    });
    meshedCaller = await startMeshedPod(cluster, svids, { name: 'caller', namespace: 'shop', serviceAccount: 'caller', declaredPorts: [8081], appPorts: [8081] });
    await cluster.addService({ name: 'web', namespace: 'shop', pod: web.pod, ports: [{ port: 80, targetPort: 8080 }] });
    // An ingress controller outside the mesh: no sidecar, no rules, plaintext HTTP to the pod.
    ingress = await cluster.addPod('ingress', { namespace: 'ingress-nginx' });
  }, 120_000);

  afterAll(async () => {
    await cluster?.destroy();
  });

  it('a plaintext caller reaches the routes the policy opens to unauthenticated callers, with no identity, and nothing else', async () => {
    const [pub, internal] = await callFrom(ingress, [`http://${web.pod.ip}:8080/public/page`, `http://${web.pod.ip}:8080/internal/admin`]);
    expect(pub?.status, JSON.stringify(pub)).toBe(200);
    expect((JSON.parse(pub!.body) as Seen).peer).toBeNull();
    expect(internal, JSON.stringify(internal)).toMatchObject({ status: 403, meshletError: 'MESHLET_DENIED' });
  });

  it('a plaintext caller cannot pass itself off as a mesh identity with the identity header', async () => {
    const [r] = await callFrom(ingress, [`http://${web.pod.ip}:8080/public/forged`], { headers: { 'x-meshlet-peer-identity': 'spiffe://cluster.local/ns/shop/sa/caller' } });
    expect(r?.status, JSON.stringify(r)).toBe(200);
    expect((JSON.parse(r!.body) as Seen).peer).toBeNull();
  });

  it('a meshed caller on the same PERMISSIVE port still arrives over mTLS with its verified identity', async () => {
    const [r] = await callFrom(meshedCaller.pod, ['http://web.shop/internal/admin']);
    expect(r?.status, JSON.stringify(r)).toBe(200);
    expect((JSON.parse(r!.body) as Seen).peer).toBe(meshedCaller.spiffeId);
  });

  it('Prometheus outside the mesh scrapes the admin port in plaintext', async () => {
    const [r] = await callFrom(ingress, [`http://${web.pod.ip}:15020/metrics`]);
    expect(r?.status, JSON.stringify(r)).toBe(200);
    expect(r?.body).toContain('meshlet_requests_total');
  });
});
