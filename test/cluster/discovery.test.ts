// Discovery (docs/discovery.md) against a real API server: `meshlet identity` with
// MESHLET_DISCOVERY=on lists and watches Pods, Services and EndpointSlices as deploy/'s
// meshlet-identity ServiceAccount (deploy/'s RBAC, its token, the API server's CA), and a
// sidecar-like client — an SVID from that same identity service through the real meshlet-ca
// source and a Pod-bound token, presented as its TLS client certificate — asks Resolve.
//
// No kubelet runs. The test plays the kubelet's part as the admin: a Node object kept alive by a
// status heartbeat, Pods bound to it (spec.nodeName), their IPs and Ready condition written
// through the pods/status subresource. kube-controller-manager's endpointslice controller
// (`--controllers=*`) then writes the EndpointSlices itself, named targetPorts resolved, as in
// a real cluster — nothing here creates a slice by hand except for the selector-less Service.
import * as grpc from '@grpc/grpc-js';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createSecureContext, type PeerCertificate } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePorts } from '../../src/dev/demo/free-ports.ts';
import { writeCa, type CertificateAuthority, issueSvid, createRootCa } from '../../src/control-plane/identity-service/ca.ts';
import { discoveryServiceDefinition, type ResolveResponseMessage } from '../../src/data-plane/identity/proto/meshlet-discovery.ts';
import { MeshletCaSource } from '../../src/data-plane/identity/sources/meshlet-ca.ts';
import { leafSpiffeId } from '../../src/data-plane/identity/sources/svid-material.ts';
import { AUDIENCE, makeCa, SERVER_ID, TRUST_DOMAIN } from '../integration/identity-service/support.ts';
import { SERVICE_CLUSTER_IP_RANGE } from './control-plane.ts';
import { clusterSkip, DEPLOY, eventually, namespace, startMeshlet, tempDir, useControlPlane, type HostProcess } from './support.ts';

const NS = 'shop';
const NODE = 'node-1';
const POD_CIDR = '10.244.0.0/16';
const ORDERS_ID = `spiffe://${TRUST_DOMAIN}/ns/${NS}/sa/orders`;
const CART_ID = `spiffe://${TRUST_DOMAIN}/ns/${NS}/sa/cart`;

const skip = clusterSkip();

type Outcome = { ok: true; res: ResolveResponseMessage } | { ok: false; err: grpc.ServiceError };

describe.skipIf(skip)('discovery: meshlet identity watching a real API server, Resolve over mTLS', () => {
  const cluster = useControlPlane();
  let work: Awaited<ReturnType<typeof tempDir>>;
  let ca: CertificateAuthority;
  let identity: HostProcess;
  let address: string;
  let adminPort: number;
  let heartbeat: NodeJS.Timeout | undefined;
  let source: MeshletCaSource | undefined;
  const clients: grpc.Client[] = [];

  const apply = (objects: unknown[]) => cluster().kubectlOk(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }) });

  const pod = (name: string, sa: string, labels: Record<string, string>, meshed: boolean) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: NS, labels, annotations: meshed ? { 'meshlet.io/status': JSON.stringify({ version: 1, mode: 'native-sidecar', initContainers: [], containers: [], volumes: [] }) } : {} },
    spec: { nodeName: NODE, serviceAccountName: sa, containers: [{ name: 'app', image: 'registry.invalid/meshlet-test/app:1', ports: [{ name: 'api', containerPort: 8080 }] }] },
  });

  /** What kubelet would report: Running, the pod IP, Ready. */
  const running = (name: string, ip: string) =>
    cluster().kubectlOk(['-n', NS, 'patch', 'pod', name, '--subresource=status', '--type=merge', '-p', JSON.stringify({
      status: { phase: 'Running', hostIP: '192.168.0.10', podIP: ip, podIPs: [{ ip }], conditions: [{ type: 'Ready', status: 'True' }, { type: 'ContainersReady', status: 'True' }, { type: 'PodScheduled', status: 'True' }] },
    })]);

  const startPod = async (name: string, sa: string, labels: Record<string, string>, meshed: boolean, ip: string) => {
    await apply([pod(name, sa, labels, meshed)]);
    await running(name, ip);
  };

  const nodeStatus = () => ({ status: { conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'played by the test', lastHeartbeatTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z') }], addresses: [{ type: 'InternalIP', address: '192.168.0.10' }] } });

  /** A Resolve client presenting `cert` (or nothing) as its TLS client certificate. */
  function resolveClient(cert?: { certChainPem: string; keyPem: string }): grpc.Client {
    const context = createSecureContext({ ca: ca.bundlePem, minVersion: 'TLSv1.3', ...(cert ? { cert: cert.certChainPem, key: cert.keyPem } : {}) });
    const credentials = grpc.credentials.createFromSecureContext(context, {
      checkServerIdentity: (_host: string, c: PeerCertificate) => {
        const id = leafSpiffeId(new X509Certificate(c.raw), 'server');
        return id.id === SERVER_ID ? undefined : new Error(`unexpected server ${id.id}`);
      },
    });
    const client = new grpc.Client(address, credentials, { 'grpc.ssl_target_name_override': 'meshlet-identity' });
    clients.push(client);
    return client;
  }

  function resolve(client: grpc.Client, host: string, port: number): Promise<Outcome> {
    const m = discoveryServiceDefinition()['Resolve']!;
    return new Promise((done) => {
      client.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, { host, port }, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (err, res) =>
        done(err ? { ok: false, err } : { ok: true, res: res as ResolveResponseMessage }),
      );
    });
  }

  /** Resolve until `check` accepts the answer (the watch catches up in its own time). */
  const resolveUntil = (client: grpc.Client, host: string, port: number, check: (r: ResolveResponseMessage) => boolean, what: string) =>
    eventually(async () => {
      const o = await resolve(client, host, port);
      if (!o.ok) throw new Error(`${o.err.code} ${o.err.details}`);
      if (!check(o.res)) throw new Error(`last answer: ${JSON.stringify(o.res)}`);
      return o.res;
    }, what, 30_000);

  let sidecar: grpc.Client;

  beforeAll(async () => {
    work = await tempDir('meshlet-cluster-discovery-');
    const cp = cluster();
    await cp.kubectlOk(['apply', '-k', DEPLOY]);
    await namespace(cp, NS);
    // The node the pods are "running" on. The node lifecycle controller marks a node that
    // never reports NotReady after its grace period and evicts its pods: report, as kubelet would.
    await apply([{ apiVersion: 'v1', kind: 'Node', metadata: { name: NODE, labels: { 'kubernetes.io/hostname': NODE } }, spec: {} }]);
    const beat = () => cp.kubectlOk(['patch', 'node', NODE, '--subresource=status', '--type=merge', '-p', JSON.stringify(nodeStatus())]);
    await beat();
    heartbeat = setInterval(() => void beat().catch(() => undefined), 5_000);

    await apply(['orders', 'cart', 'legacy', 'frontend'].map((name) => ({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace: NS } })));
    await apply([
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'orders', namespace: NS },
        spec: { selector: { app: 'orders' }, ports: [{ name: 'web', port: 80, targetPort: 'api', appProtocol: 'http' }, { name: 'stream', port: 9090, targetPort: 8080, appProtocol: 'kubernetes.io/h2c' }] },
      },
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'cart', namespace: NS }, spec: { selector: { app: 'cart' }, ports: [{ name: 'grpc', port: 80, targetPort: 8080 }] } },
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'legacy', namespace: NS }, spec: { selector: { app: 'legacy' }, ports: [{ name: 'tcp-db', port: 5432, targetPort: 8080 }] } },
    ]);
    await startPod('orders-1', 'orders', { app: 'orders' }, true, '10.244.1.10');
    await startPod('orders-2', 'orders', { app: 'orders' }, true, '10.244.1.11');
    await startPod('cart-1', 'cart', { app: 'cart' }, true, '10.244.1.30');
    await startPod('cart-old', 'cart', { app: 'cart' }, false, '10.244.1.31');
    await startPod('legacy-1', 'legacy', { app: 'legacy' }, false, '10.244.1.20');
    await startPod('frontend', 'frontend', { app: 'frontend' }, true, '10.244.1.50');

    const identityToken = join(work.dir, 'identity-token');
    await writeFile(identityToken, await cp.kubectlOk(['-n', 'meshlet-system', 'create', 'token', 'meshlet-identity', '--duration=1h']));
    ({ ca } = await makeCa());
    const caDir = join(work.dir, 'ca');
    await writeCa(caDir, ca);
    const [port, admin] = (await freePorts(2)) as [number, number];
    adminPort = admin;
    identity = startMeshlet('identity', {
      MESHLET_TRUST_DOMAIN: TRUST_DOMAIN,
      MESHLET_CA_DIR: caDir,
      MESHLET_IDENTITY_LISTEN: `127.0.0.1:${port}`,
      MESHLET_IDENTITY_ADMIN_LISTEN: `127.0.0.1:${admin}`,
      MESHLET_TOKEN_AUTH: 'token-review',
      MESHLET_KUBERNETES_API_URL: cp.server,
      MESHLET_KUBERNETES_CA_FILE: cp.caFile,
      MESHLET_KUBERNETES_TOKEN_FILE: identityToken,
      MESHLET_DISCOVERY: 'on',
      MESHLET_POD_CIDRS: POD_CIDR,
      MESHLET_SERVICE_CIDRS: SERVICE_CLUSTER_IP_RANGE,
      MESHLET_LOG_LEVEL: 'info',
    });
    address = `127.0.0.1:${port}`;
    await eventually(async () => {
      if (identity.child.exitCode !== null) throw new Error(`meshlet identity exited ${identity.child.exitCode}: ${identity.stderr()}${identity.stdout()}`);
      return identity.stdout().includes('"event":"discovery_synced"');
    }, 'meshlet identity to list Pods, Services and EndpointSlices', 60_000);

    // The caller: an SVID for shop/frontend from this identity service, as a sidecar gets it
    // (meshlet-ca source, Pod-bound token), Certify on the listener that now asks for client certs.
    const tokenFile = join(work.dir, 'frontend-token');
    await writeFile(tokenFile, await cp.kubectlOk(['-n', NS, 'create', 'token', 'frontend', `--audience=${AUDIENCE}`, '--duration=1h', '--bound-object-kind=Pod', '--bound-object-name=frontend']));
    source = new MeshletCaSource({ address, trustDomain: TRUST_DOMAIN, rootsPem: ca.bundlePem, tokenPath: tokenFile, startTimeoutMs: 30_000 });
    const snapshot = await source.start();
    expect(snapshot.svid.spiffeId.id).toBe(`spiffe://${TRUST_DOMAIN}/ns/${NS}/sa/frontend`);
    sidecar = resolveClient({ certChainPem: snapshot.svid.certChainPem, keyPem: snapshot.svid.privateKeyPem });
  });

  afterAll(async () => {
    clearInterval(heartbeat);
    for (const c of clients) c.close();
    source?.close();
    await identity?.stop();
    await work?.cleanup();
  });

  it('a Service whose pods are all meshed: MESHED, its exact identity, the appProtocol, endpoints on the named targetPort', async () => {
    const r = await resolveUntil(sidecar, 'orders', 80, (x) => x.kind === 'MESHED' && x.endpoints.length === 2, 'orders to be MESHED with both endpoints');
    expect(r).toMatchObject({ identities: [ORDERS_ID], protocol: 'http', service: `orders.${NS}` });
    expect(r.endpoints.map((e) => `${e.address}:${e.port} ${e.identity}`).sort()).toEqual([`10.244.1.10:8080 ${ORDERS_ID}`, `10.244.1.11:8080 ${ORDERS_ID}`]);
    // The slices really are the endpointslice controller's.
    const slices = JSON.parse(await cluster().kubectlOk(['-n', NS, 'get', 'endpointslices', '-l', 'kubernetes.io/service-name=orders', '-o', 'json'])) as { items: { metadata: { labels: Record<string, string> } }[] };
    expect(slices.items.map((s) => s.metadata.labels['endpointslice.kubernetes.io/managed-by'])).toContain('endpointslice-controller.k8s.io');
  });

  it('the same Service by ClusterIP and by every DNS form; the other port\'s appProtocol', async () => {
    const svc = JSON.parse(await cluster().kubectlOk(['-n', NS, 'get', 'service', 'orders', '-o', 'json'])) as { spec: { clusterIP: string } };
    for (const host of [svc.spec.clusterIP, `orders.${NS}`, `orders.${NS}.svc`, `orders.${NS}.svc.cluster.local`]) {
      const r = await resolveUntil(sidecar, host, 80, (x) => x.kind === 'MESHED', `${host} to be MESHED`);
      expect(r.identities).toEqual([ORDERS_ID]);
    }
    expect((await resolveUntil(sidecar, 'orders', 9090, (x) => x.kind === 'MESHED', 'orders:9090')).protocol).toBe('h2c');
  });

  it('an unmeshed pod and an unmeshed Service: UNMESHED, no identity; a mixed Service: MIXED with per-endpoint identities', async () => {
    const pod = await resolveUntil(sidecar, '10.244.1.20', 8080, (x) => x.kind === 'UNMESHED', 'legacy-1 to be UNMESHED');
    expect(pod.identities).toEqual([]);
    expect(pod.protocol).toBe('tcp');
    await resolveUntil(sidecar, 'legacy', 5432, (x) => x.kind === 'UNMESHED', 'Service legacy to be UNMESHED');
    const mixed = await resolveUntil(sidecar, 'cart', 80, (x) => x.kind === 'MIXED' && x.endpoints.length === 2, 'cart to be MIXED');
    expect(mixed.identities).toEqual([CART_ID]);
    expect(Object.fromEntries(mixed.endpoints.map((e) => [e.address, e.identity]))).toEqual({ '10.244.1.30': CART_ID, '10.244.1.31': '' });
    expect(mixed.protocol).toBe('grpc');
  });

  it('in-cluster addresses nothing has are UNKNOWN; others EXTERNAL', async () => {
    expect((await resolveUntil(sidecar, '10.244.99.99', 80, () => true, 'an answer')).kind).toBe('UNKNOWN');
    expect((await resolveUntil(sidecar, '10.96.250.250', 80, () => true, 'an answer')).kind).toBe('UNKNOWN');
    expect((await resolveUntil(sidecar, 'nothing-here', 80, () => true, 'an answer')).kind).toBe('UNKNOWN');
    expect((await resolveUntil(sidecar, '93.184.216.34', 443, () => true, 'an answer')).kind).toBe('EXTERNAL');
    expect((await resolveUntil(sidecar, 'example.com', 443, () => true, 'an answer')).kind).toBe('EXTERNAL');
  });

  it('a pod recreated without the sidecar is seen by the next Resolve, and recreated with it again', async () => {
    const cp = cluster();
    await cp.kubectlOk(['-n', NS, 'delete', 'pod', 'orders-2', '--wait=true', '--grace-period=0', '--force']);
    await startPod('orders-2', 'orders', { app: 'orders' }, false, '10.244.1.11');
    await resolveUntil(sidecar, '10.244.1.11', 8080, (x) => x.kind === 'UNMESHED', 'orders-2 (recreated unmeshed) to be UNMESHED');
    const mixed = await resolveUntil(sidecar, 'orders', 80, (x) => x.kind === 'MIXED' && x.endpoints.length === 2, 'orders to be MIXED');
    expect(mixed.endpoints.find((e) => e.address === '10.244.1.11')?.identity).toBe('');

    await cp.kubectlOk(['-n', NS, 'delete', 'pod', 'orders-2', '--wait=true', '--grace-period=0', '--force']);
    await startPod('orders-2', 'orders', { app: 'orders' }, true, '10.244.1.11');
    await resolveUntil(sidecar, '10.244.1.11', 8080, (x) => x.kind === 'MESHED' && x.identities[0] === ORDERS_ID, 'orders-2 (recreated meshed) to be MESHED');
    await resolveUntil(sidecar, 'orders', 80, (x) => x.kind === 'MESHED' && x.endpoints.length === 2, 'orders to be MESHED again');
  });

  it('no SVID, or a certificate from another CA: UNAUTHENTICATED; Certify still works without one', async () => {
    const anonymous = await resolve(resolveClient(), 'orders', 80);
    expect(anonymous.ok).toBe(false);
    if (!anonymous.ok) {
      expect(anonymous.err.code).toBe(grpc.status.UNAUTHENTICATED);
      expect(anonymous.err.metadata.get('meshlet-error-code')).toEqual(['DISCOVERY_NO_CLIENT_CERTIFICATE']);
    }
    const otherRoot = await createRootCa({ trustDomain: TRUST_DOMAIN });
    const forged = await issueSvid(otherRoot, { spiffeId: `spiffe://${TRUST_DOMAIN}/ns/${NS}/sa/frontend` });
    const outsider = await resolve(resolveClient({ certChainPem: forged.certChainPem, keyPem: forged.privateKeyPem }), 'orders', 80);
    expect(outsider.ok).toBe(false);
    if (!outsider.ok) {
      expect(outsider.err.code).toBe(grpc.status.UNAUTHENTICATED);
      expect(outsider.err.metadata.get('meshlet-error-code')).toEqual(['DISCOVERY_CLIENT_CERTIFICATE_INVALID']);
    }
    // The SVID above came through Certify on this listener, without a client certificate (beforeAll).
    expect(source?.current()).toBeDefined();
  });

  it('metrics: objects watched, resolves by kind, refusals by reason', async () => {
    const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
    const value = (sample: string) => Number(text.split('\n').find((l) => l.startsWith(`${sample} `))?.split(' ')[1] ?? 'NaN');
    expect(value('meshlet_discovery_objects{resource="pods"}')).toBeGreaterThanOrEqual(6);
    expect(value('meshlet_discovery_objects{resource="services"}')).toBeGreaterThanOrEqual(3);
    expect(value('meshlet_discovery_objects{resource="endpointslices"}')).toBeGreaterThanOrEqual(3);
    expect(value('meshlet_discovery_resolves_total{kind="meshed"}')).toBeGreaterThan(0);
    expect(value('meshlet_discovery_resolves_total{kind="mixed"}')).toBeGreaterThan(0);
    expect(value('meshlet_discovery_resolves_refused_total{reason="unauthenticated"}')).toBeGreaterThanOrEqual(2);
    expect(value('meshlet_discovery_watch_restarts_total{resource="pods",reason="error"}')).toBe(0);
  });
});
