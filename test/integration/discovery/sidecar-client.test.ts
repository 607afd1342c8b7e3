// The sidecar's discovery client (src/data-plane/discovery/) against the real identity service
// (startIdentityProcess, in process, MESHLET_DISCOVERY=on) watching an API server stand-in on
// loopback HTTPS. The client holds a real SVID: the real meshlet-ca source gets it from that
// identity service through Certify (a JWKS-checked ServiceAccount token), and the discovery
// client presents it as its TLS client certificate. Meshed, unmeshed, mixed, unknown,
// external; no SVID and a foreign SVID (UNAUTHENTICATED); a rotated SVID picked up on the next
// call; the identity service down (unavailable, the cached answers still served until their
// TTL) and back (recovery).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRootCa, issueSvid, writeCa } from '../../../src/control-plane/identity-service/ca.ts';
import { readIdentityConfig } from '../../../src/control-plane/identity-service/config.ts';
import { startIdentityProcess, type RunningIdentityService } from '../../../src/control-plane/identity-service/process.ts';
import { createDiscovery, type Discovery } from '../../../src/data-plane/discovery/create-discovery.ts';
import { decide } from '../../../src/data-plane/discovery/decide.ts';
import { DiscoveryClient } from '../../../src/data-plane/discovery/discovery-client.ts';
import type { Resolution } from '../../../src/data-plane/discovery/resolution.ts';
import type { IdentitySnapshot } from '../../../src/data-plane/identity/svid.ts';
import { MeshletCaSource } from '../../../src/data-plane/identity/sources/meshlet-ca.ts';
import { readSidecarConfig } from '../../../src/data-plane/sidecar/sidecar-env.ts';
import { startKubeApiStandIn, type KubeApiStandIn } from '../../support/kube-api-stand-in.ts';
import { makeCa, startFakeIssuer, TRUST_DOMAIN, type FakeIssuer } from '../identity-service/support.ts';

const id = (ns: string, sa: string) => `spiffe://${TRUST_DOMAIN}/ns/${ns}/sa/${sa}`;

function pod(name: string, ip: string, o: { sa: string; meshed: boolean; app: string; ready?: boolean }) {
  return {
    metadata: { name, namespace: 'shop', resourceVersion: '1', labels: { app: o.app }, annotations: o.meshed ? { 'meshlet.io/status': '{"version":1}' } : {} },
    spec: { serviceAccountName: o.sa, containers: [{ name: 'app', ports: [{ name: 'api', containerPort: 8080 }] }] },
    status: { phase: 'Running', podIP: ip, podIPs: [{ ip }], conditions: [{ type: 'Ready', status: o.ready === false ? 'False' : 'True' }] },
  };
}

function service(name: string, ip: string, app: string, port: { name: string; appProtocol?: string }) {
  return {
    metadata: { name, namespace: 'shop', resourceVersion: '1' },
    spec: { type: 'ClusterIP', clusterIP: ip, clusterIPs: [ip], selector: { app }, ports: [{ protocol: 'TCP', port: 80, targetPort: 'api', ...port }] },
  };
}

function slice(svc: string, portName: string, endpoints: { ip: string; pod: string; ready?: boolean }[]) {
  return {
    metadata: { name: `${svc}-abcde`, namespace: 'shop', resourceVersion: '1', labels: { 'kubernetes.io/service-name': svc } },
    addressType: 'IPv4',
    ports: [{ protocol: 'TCP', name: portName, port: 8080 }],
    endpoints: endpoints.map((e) => ({ addresses: [e.ip], conditions: { ready: e.ready ?? true }, targetRef: { kind: 'Pod', name: e.pod, namespace: 'shop' } })),
  };
}

/** The cluster the identity service watches. */
const CLUSTER: Record<string, unknown[]> = {
  '/api/v1/pods': [
    pod('orders-1', '10.244.1.10', { sa: 'orders', meshed: true, app: 'orders' }),
    pod('legacy-1', '10.244.1.20', { sa: 'legacy', meshed: false, app: 'legacy' }),
    pod('cart-1', '10.244.1.30', { sa: 'cart', meshed: true, app: 'cart' }),
    pod('cart-old', '10.244.1.31', { sa: 'cart-v1', meshed: false, app: 'cart' }),
  ],
  '/api/v1/services': [service('orders', '10.96.0.10', 'orders', { name: 'http', appProtocol: 'grpc' }), service('legacy', '10.96.0.20', 'legacy', { name: 'tcp-db' }), service('cart', '10.96.0.30', 'cart', { name: 'http' })],
  '/apis/discovery.k8s.io/v1/endpointslices': [
    slice('orders', 'http', [{ ip: '10.244.1.10', pod: 'orders-1' }]),
    slice('legacy', 'tcp-db', [{ ip: '10.244.1.20', pod: 'legacy-1' }]),
    slice('cart', 'http', [
      { ip: '10.244.1.30', pod: 'cart-1' },
      { ip: '10.244.1.31', pod: 'cart-old' },
    ]),
  ],
};

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createTcpServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

const settle = async (r: Resolution | Promise<Resolution>) => r;

async function until<T>(get: () => Promise<T>, ok: (t: T) => boolean, what: string, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await get();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('the sidecar discovery client against the identity service', () => {
  let dir: string;
  let issuer: FakeIssuer;
  let api: KubeApiStandIn;
  let identityEnv: Record<string, string>;
  let identity: RunningIdentityService | undefined;
  let address: string;
  let bundlePem: string;
  let source: MeshletCaSource;
  let discovery: Discovery;
  const logger = pino({ level: 'silent' });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'meshlet-discovery-client-'));
    issuer = await startFakeIssuer();
    api = await startKubeApiStandIn({ token: 'watch-token', objects: CLUSTER });
    const { ca } = await makeCa();
    bundlePem = ca.bundlePem;
    await writeCa(join(dir, 'ca'), ca);
    await writeFile(join(dir, 'api-token'), 'watch-token\n');
    await writeFile(join(dir, 'api-ca.crt'), api.caPem);
    await writeFile(join(dir, 'jwks-ca.crt'), issuer.caPem);
    await writeFile(join(dir, 'bundle.crt'), ca.bundlePem);
    identityEnv = {
      MESHLET_TRUST_DOMAIN: TRUST_DOMAIN,
      MESHLET_CA_DIR: join(dir, 'ca'),
      MESHLET_IDENTITY_LISTEN: `127.0.0.1:${await freePort()}`,
      MESHLET_IDENTITY_ADMIN_LISTEN: 'off',
      MESHLET_TOKEN_AUTH: 'jwks',
      MESHLET_JWKS_URL: issuer.jwksUrl,
      MESHLET_JWKS_ISSUER: issuer.issuer,
      MESHLET_JWKS_CA_FILE: join(dir, 'jwks-ca.crt'),
      MESHLET_KUBERNETES_API_URL: api.url,
      MESHLET_KUBERNETES_CA_FILE: join(dir, 'api-ca.crt'),
      MESHLET_KUBERNETES_TOKEN_FILE: join(dir, 'api-token'),
      MESHLET_DISCOVERY: 'on',
      MESHLET_POD_CIDRS: '10.244.0.0/16',
      MESHLET_SERVICE_CIDRS: '10.96.0.0/16',
    };
    identity = await startIdentityProcess(readIdentityConfig(identityEnv), logger);
    address = `127.0.0.1:${identity.port}`;

    // The sidecar of pod "frontend" in namespace shop: its SVID through Certify, as in a pod.
    await writeFile(join(dir, 'sa-token'), await issuer.mint({ namespace: 'shop', serviceAccount: 'frontend' }));
    source = new MeshletCaSource({ address, trustDomain: TRUST_DOMAIN, rootsPem: ca.bundlePem, tokenPath: join(dir, 'sa-token'), startTimeoutMs: 20_000 });
    await source.start();
    const config = readSidecarConfig({
      MESHLET_NAMESPACE: 'shop',
      MESHLET_SERVICE_ACCOUNT: 'frontend',
      MESHLET_TRUST_DOMAIN: TRUST_DOMAIN,
      MESHLET_CA_ADDRESS: address,
      MESHLET_TRUST_BUNDLE_FILE: join(dir, 'bundle.crt'),
      MESHLET_DISCOVERY: 'on',
      MESHLET_POD_CIDRS: '10.244.0.0/16',
      MESHLET_SERVICE_CIDRS: '10.96.0.0/16',
    });
    discovery = (await createDiscovery(config, source))!;
    // The watch lists in its own time: until then Resolve answers UNAVAILABLE not_synced.
    await until(
      () => settle(discovery.resolve({ host: '10.96.0.10', port: 80 })),
      (r) => r.kind === 'meshed',
      'the first answer',
    );
  });

  afterAll(async () => {
    await discovery?.close();
    await source?.close();
    await identity?.close(1_000);
    await api?.close();
    await issuer?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('is off unless MESHLET_DISCOVERY=on', async () => {
    expect(await createDiscovery(readSidecarConfig({ MESHLET_NAMESPACE: 'shop', MESHLET_SERVICE_ACCOUNT: 'frontend' }), source)).toBeUndefined();
  });

  it('a meshed Service: its exact identity and protocol, by ClusterIP and by name; cached answers are synchronous', async () => {
    const byIp = discovery.resolve({ host: '10.96.0.10', port: 80 });
    expect(byIp).not.toBeInstanceOf(Promise); // cached by beforeAll
    expect(byIp).toMatchObject({ kind: 'meshed', identities: [id('shop', 'orders')], protocol: 'grpc', service: 'orders.shop', endpoints: [{ address: '10.244.1.10', port: 8080, identity: id('shop', 'orders'), ready: true }] });
    expect(decide(byIp as Resolution)).toEqual({ action: 'mtls', identities: [id('shop', 'orders')], protocol: 'grpc' });
    for (const host of ['orders', 'orders.shop', 'orders.shop.svc.cluster.local', '10.244.1.10']) {
      const r = await settle(discovery.resolve({ host, port: host.startsWith('10.') ? 8080 : 80 }));
      expect(r, host).toMatchObject({ kind: 'meshed', identities: [id('shop', 'orders')] });
    }
  });

  it('an unmeshed Service → plaintext labelled unmeshed', async () => {
    const r = await settle(discovery.resolve({ host: 'legacy', port: 80 }));
    expect(r).toMatchObject({ kind: 'unmeshed', service: 'legacy.shop' });
    expect(decide(r)).toMatchObject({ action: 'plaintext', label: 'unmeshed' });
  });

  it('a mixed Service → its endpoints, each with its own decision', async () => {
    const r = await settle(discovery.resolve({ host: '10.96.0.30', port: 80 }));
    expect(r).toMatchObject({ kind: 'mixed', identities: [id('shop', 'cart')] });
    const d = decide(r);
    expect(d).toMatchObject({ action: 'endpoints' });
    expect(d.action === 'endpoints' && [...d.endpoints].sort((a, b) => a.address.localeCompare(b.address))).toEqual([
      { address: '10.244.1.30', port: 8080, then: { action: 'mtls', identities: [id('shop', 'cart')] } },
      { address: '10.244.1.31', port: 8080, then: { action: 'plaintext', label: 'unmeshed' } },
    ]);
  });

  it('unknown in-cluster destinations → refuse; outside → egress', async () => {
    for (const [host, port] of [['10.244.9.9', 80], ['10.96.0.10', 81], ['nothing.shop.svc.cluster.local', 80]] as const) {
      const r = await settle(discovery.resolve({ host, port }));
      expect(r.kind, `${host}:${port}`).toBe('unknown');
      expect(decide(r)).toMatchObject({ action: 'refuse', reason: 'unknown_destination' });
    }
    const out = await settle(discovery.resolve({ host: '93.184.216.34', port: 443 }));
    expect(out.kind).toBe('external');
    expect(decide(out)).toEqual({ action: 'egress' });
  });

  it('no SVID → unavailable (UNAUTHENTICATED), refused inside the cluster', async () => {
    const client = new DiscoveryClient({ address, trustDomain: TRUST_DOMAIN, identity: { current: () => undefined }, rootsPem: bundlePem });
    try {
      const r = await client.resolve({ host: '10.96.0.10', port: 80 });
      expect(r).toMatchObject({ kind: 'unavailable', reason: 'unauthenticated' });
      expect(r.kind === 'unavailable' && r.detail).toContain('DISCOVERY_NO_CLIENT_CERTIFICATE');
    } finally {
      await client.close();
    }
    const noRoots = new DiscoveryClient({ address, trustDomain: TRUST_DOMAIN, identity: { current: () => undefined } });
    expect(await noRoots.resolve({ host: '10.96.0.10', port: 80 })).toMatchObject({ kind: 'unavailable', reason: 'no_svid_roots' });
    await noRoots.close();
  });

  it('an SVID of another CA → UNAUTHENTICATED; once the identity source rotates to a good one, the next call uses it', async () => {
    const foreignRoot = await createRootCa({ trustDomain: TRUST_DOMAIN });
    const foreign = await issueSvid(foreignRoot, { spiffeId: id('shop', 'frontend') });
    // The foreign SVID, but the real mesh roots to verify the identity service with.
    const forged: IdentitySnapshot = { svid: foreign, bundles: new Map([[TRUST_DOMAIN, bundlePem]]) };
    let current: IdentitySnapshot = forged;
    const client = new DiscoveryClient({ address, trustDomain: TRUST_DOMAIN, identity: { current: () => current } });
    try {
      expect(await client.resolve({ host: 'orders', port: 80 })).toMatchObject({ kind: 'unavailable', reason: 'unauthenticated', detail: expect.stringContaining('DISCOVERY_CLIENT_CERTIFICATE_INVALID') });
      current = source.current()!;
      expect(await client.resolve({ host: 'orders', port: 80 })).toMatchObject({ kind: 'meshed', identities: [id('shop', 'orders')] });
    } finally {
      await client.close();
    }
  });

  it('the identity service down: uncached destinations unavailable (refused inside, egress outside), cached ones served until their TTL; then recovery', async () => {
    const cachedBefore = discovery.resolve({ host: 'orders', port: 80 });
    await settle(cachedBefore);
    await identity!.close(500);
    identity = undefined;

    const inside = await settle(discovery.resolve({ host: '10.244.1.20', port: 8080 }));
    expect(inside).toMatchObject({ kind: 'unavailable', inCluster: true });
    expect(['unreachable', 'deadline']).toContain((inside as { reason: string }).reason);
    expect(decide(inside)).toMatchObject({ action: 'refuse', reason: 'discovery_unavailable' });
    const outside = await settle(discovery.resolve({ host: '1.1.1.1', port: 443 }));
    expect(outside).toMatchObject({ kind: 'unavailable', inCluster: false });
    expect(decide(outside)).toEqual({ action: 'egress' });
    // Still within its 10 s TTL: the answer held is used (never past its TTL).
    expect(discovery.resolve({ host: 'orders', port: 80 })).toMatchObject({ kind: 'meshed' });

    identity = await startIdentityProcess(readIdentityConfig(identityEnv), logger);
    const back = await until(
      () => settle(discovery.resolve({ host: '10.244.1.20', port: 8080 })),
      (r) => r.kind !== 'unavailable',
      'discovery to answer again',
    );
    expect(back).toMatchObject({ kind: 'unmeshed' });
  });
});
