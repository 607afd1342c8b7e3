// The mesh end to end, in network-namespace pods: two pods injected by `meshlet inject`,
// their iptables set by the injected init container, real sidecars under uid 2020 and apps
// under uid 1000, a Service DNATed by the node. Every bullet of issue 8's "pod harness"
// list is one test here. Needs root + iptables (skipped with the reason otherwise); the
// wire capture also needs tcpdump.
import { randomBytes } from 'node:crypto';
import { connect as tcpConnect } from 'node:net';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubeletWrite } from '../support/kubelet-volume.ts';
import { Cluster, e2eSkipped, waitFor, type Service } from './harness/index.ts';
import { callFrom, grpcCallFrom, TrafficLoop } from './support/app-calls.ts';
import { AdminScrape, listConnections } from './support/admin-scrape.ts';
import { markAppReady, seenByApp, startMeshedPod, type MeshedPod } from './support/meshed-pod.ts';
import { SvidVolumes } from './support/svid-volume.ts';
import { tcpdumpAvailable, WireCapture } from './support/wire-capture.ts';

const FRONTEND_ID = 'spiffe://cluster.local/ns/web/sa/frontend';
const REPORTS_ID = 'spiffe://cluster.local/ns/web/sa/reports';
const ORDERS_ID = 'spiffe://cluster.local/ns/shop/sa/orders';
const APP_PORT = 8080;
/** The orders app listens here too, but the pod spec does not declare it. */
const UNDECLARED_PORT = 9090;
const GRPC_PORT = 9000;

/** v1: the web namespace may list orders; /admin is the operator's only. */
const POLICY_V1 = `apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: orders }
spec:
  servers:
    - name: orders
      selector: { serviceAccount: orders }
      ports:
        - { port: ${APP_PORT}, protocol: http }
        - { port: ${GRPC_PORT}, protocol: grpc }
      routes:
        - name: get-order
          port: ${GRPC_PORT}
          grpc: { service: shop.v1.Orders, method: GetOrder }
          callers:
            - namespace: web
        - name: list-orders
          methods: [GET]
          path: { prefix: /orders }
          callers:
            - namespace: web
        - name: admin
          path: { prefix: /admin }
          callers:
            - spiffeId: spiffe://cluster.local/ns/ops/sa/operator
`;

/** v2: the frontend gets /admin; /orders/secret is closed to everyone. */
const POLICY_V2 = POLICY_V1.replace('spiffe://cluster.local/ns/ops/sa/operator', FRONTEND_ID).concat(`        - name: secret-orders
          path: { prefix: /orders/secret }
          callers: []
`);

const marker = (what: string) => `${what}-${randomBytes(6).toString('hex')}`;

/** A plaintext HTTP request over raw TCP from the test process (outside the mesh); resolves with whatever came back. */
function plaintextFromHost(host: string, port: number, path: string): Promise<{ reply: string; error: string | null }> {
  return new Promise((resolve) => {
    let reply = '';
    const s = tcpConnect({ host, port }, () => s.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`));
    s.setTimeout(10_000, () => s.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    s.setEncoding('latin1').on('data', (d: string) => (reply += d));
    s.on('close', () => resolve({ reply, error: null }));
    s.on('error', (err: NodeJS.ErrnoException) => resolve({ reply, error: err.code ?? err.message }));
  });
}

/** An mTLS handshake from the test process with a mesh SVID; returns what the server proved. */
function handshakeFromHost(host: string, port: number, client: { certChainPem: string; privateKeyPem: string; bundlePem: string }): Promise<{ protocol: string | null; uri: string | undefined; serial: string }> {
  return new Promise((resolve, reject) => {
    // The server's SPIFFE ID is checked below, not a hostname (X.509-SVID: no hostname check).
    const s = tlsConnect({ host, port, cert: client.certChainPem, key: client.privateKeyPem, ca: client.bundlePem, checkServerIdentity: () => undefined, ALPNProtocols: ['http/1.1'] }, () => {
      const cert: PeerCertificate = s.getPeerCertificate();
      resolve({ protocol: s.getProtocol(), uri: cert.subjectaltname?.replace(/^URI:/, ''), serial: cert.serialNumber });
      s.end();
    });
    s.on('error', reject);
  });
}

describe.skipIf(e2eSkipped('mesh e2e (network-namespace pods)'))('mesh e2e: injected pods, real interception', () => {
  let cluster: Cluster;
  let svids: SvidVolumes;
  let orders: MeshedPod;
  let frontend: MeshedPod;
  let service: Service;
  let ordersUrl: string;

  beforeAll(async () => {
    cluster = await Cluster.create();
    svids = await SvidVolumes.create();
    orders = await startMeshedPod(cluster, svids, {
      name: 'orders',
      namespace: 'shop',
      serviceAccount: 'orders',
      declaredPorts: [APP_PORT, { containerPort: GRPC_PORT, name: 'grpc' }],
      appPorts: [APP_PORT, UNDECLARED_PORT],
      grpcPort: GRPC_PORT,
      readinessProbePort: APP_PORT,
      policy: POLICY_V1,
    });
    service = await cluster.addService({ name: 'orders', pod: orders.pod, ports: [{ port: 80, targetPort: APP_PORT }, { port: GRPC_PORT, targetPort: GRPC_PORT }] });
    ordersUrl = `http://${service.fqdn}`;
    frontend = await startMeshedPod(cluster, svids, {
      name: 'frontend',
      namespace: 'web',
      serviceAccount: 'frontend',
      declaredPorts: [],
    });
  }, 120_000);

  afterAll(async () => {
    await cluster?.destroy();
  });

  it("A's app calls B by service name through both sidecars; B's app sees A's verified identity, not a forged one", async () => {
    const [r] = await callFrom(frontend.pod, [`${ordersUrl}/orders/42`], { headers: { 'x-meshlet-peer-identity': 'spiffe://cluster.local/ns/evil/sa/forged' } });
    expect(r?.status, JSON.stringify(r)).toBe(200);
    const body = JSON.parse(r!.body) as { app: string; port: number; path: string; peer: string | null; uid: number };
    expect(body).toEqual({ app: 'orders', port: APP_PORT, method: 'GET', path: '/orders/42', peer: FRONTEND_ID, uid: 1000 });

    // B's sidecar holds the connection from A's pod: mTLS 1.3, A's identity, A's address.
    const inbound = (await listConnections(orders)).filter((c) => c.direction === 'inbound' && c.peerIdentity === FRONTEND_ID);
    expect(inbound.length).toBeGreaterThan(0);
    expect(inbound.every((c) => c.tlsVersion === 'TLSv1.3')).toBe(true);
    // A's sidecar dialed the name: its connection goes to the Service VIP (DNAT in the node)...
    const toVip = (await listConnections(frontend)).filter((c) => c.direction === 'outbound' && c.remoteAddress.replace(/^::ffff:/, '') === service.vip && c.remotePort === 80);
    expect(toVip.length).toBeGreaterThan(0);
    expect(toVip.every((c) => c.tlsVersion === 'TLSv1.3')).toBe(true);
    // ...and arrives from A's pod IP (without br_netfilter the node masquerades it).
    expect(inbound.map((c) => c.remoteAddress.replace(/^::ffff:/, ''))).toContain(cluster.preservesSourceIp ? frontend.pod.ip : cluster.gatewayIp);
  });

  it("B's app port answers a TLS 1.3 handshake with B's SVID, for a client holding a mesh SVID", async () => {
    const hello = await handshakeFromHost(orders.pod.ip, APP_PORT, frontend.svid);
    expect(hello.protocol).toBe('TLSv1.3');
    expect(hello.uri).toBe(ORDERS_ID);
    expect(hello.serial).toBe(orders.svid.serial);
  });

  it.skipIf(!tcpdumpAvailable())('on the wire into B only TLS records pass: the request path never appears in clear', async () => {
    const capture = await WireCapture.start(orders.pod, `${await cluster.volumeDir('capture')}/orders.pcap`);
    const secret = marker('wire');
    const control = marker('control');
    const [r] = await callFrom(frontend.pod, [`${ordersUrl}/orders/${secret}`]);
    // A control: the same capture DOES show a plaintext request's bytes (refused by B's sidecar, but sent).
    await plaintextFromHost(orders.pod.ip, APP_PORT, `/orders/${control}`);
    // The control is sent last: once tcpdump has written it, it has written the secret request too.
    await capture.waitForBytes('the capture to hold the control request', Buffer.from(control));
    const pcap = await capture.stop();
    expect(r?.status).toBe(200);
    expect(pcap.includes(Buffer.from(control))).toBe(true);
    expect(pcap.includes(Buffer.from(secret))).toBe(false);
    expect(pcap.includes(Buffer.from([0x17, 0x03, 0x03]))).toBe(true); // TLS application_data records
    // The app's log line can trail the response on a loaded machine: wait for it, then check it.
    const seen = await waitFor('the app to log the secret request', () => seenByApp(orders).find((s) => s.path === `/orders/${secret}`) ?? undefined);
    expect(seen.peer).toBe(FRONTEND_ID);
  });

  it('per-route policy: an allowed route passes, a denied one gets 403 and never reaches the app', async () => {
    const denied = marker('/admin/users');
    const after = marker('/orders/after');
    const [allowed, refused, allowedAfter] = await callFrom(frontend.pod, [`${ordersUrl}/orders`, `${ordersUrl}${denied}`, `${ordersUrl}${after}`]);
    expect(allowedAfter?.status).toBe(200);
    expect(allowed?.status).toBe(200);
    expect(refused?.status).toBe(403);
    expect(refused?.meshletError).toBe('MESHLET_DENIED');
    expect(JSON.parse(refused!.body)).toMatchObject({ error: { code: 'MESHLET_DENIED', route: 'admin', reason: expect.stringContaining('not authorized by route "admin"') } });
    // Once the app's log shows the request made after the denied one, the denied one would be
    // there too had it passed.
    expect(await waitFor('the app to log the request after the denied one', () => seenByApp(orders).find((s) => s.path === after) ?? undefined)).toBeTruthy();
    expect(seenByApp(orders).some((s) => s.path === denied)).toBe(false);
  });

  it('gRPC through both sidecars: an allowed method answers, a denied one gets PERMISSION_DENIED and never reaches the app', async () => {
    const [get, del] = await grpcCallFrom(frontend.pod, `${service.fqdn}:${GRPC_PORT}`, ['GetOrder=7', 'DeleteOrder=7']);
    expect(get).toMatchObject({ code: 0, reply: { id: '7', app: 'orders', peer: FRONTEND_ID } });
    expect(del?.code).toBe(7);
    expect(del?.details).toContain('denied by policy');
    const grpcSeen = seenByApp(orders).filter((s) => s.port === GRPC_PORT).map((s) => s.path);
    expect(grpcSeen).toEqual(['/shop.v1.Orders/GetOrder']);
  });

  it('a port the pod spec does not declare is not reachable around the sidecar', async () => {
    // The app really listens there: from inside its own pod it answers.
    expect(await orders.pod.listeningPorts()).toContain(UNDECLARED_PORT);
    const [inside] = await callFrom(orders.pod, [`http://127.0.0.1:${UNDECLARED_PORT}/inside`]);
    expect(inside?.status).toBe(200);

    const before = await AdminScrape.of(orders.adminUrl);
    const fromHost = await plaintextFromHost(orders.pod.ip, UNDECLARED_PORT, '/from-node');
    expect(fromHost).toEqual({ reply: '', error: 'ECONNRESET' });
    const [fromA] = await callFrom(frontend.pod, [`http://${orders.pod.ip}:${UNDECLARED_PORT}/from-a`]);
    // The frontend sidecar dials 9090 over mTLS as named; the orders pod resets it: an error the
    // app sees. The reset lands during the TCP connect or the TLS handshake, as timing has it.
    const statusFor: Record<string, number> = { MESHLET_UPSTREAM_CONNECT_FAILED: 503, MESHLET_UPSTREAM_TLS_FAILED: 502 };
    expect(fromA?.status, JSON.stringify(fromA)).toBe(statusFor[fromA?.meshletError ?? '']);
    // Nor is B's outbound listener a relay for outsiders.
    const relay = await plaintextFromHost(orders.pod.ip, 15001, `http://${service.fqdn}/orders/relay`);
    expect(relay.reply).not.toMatch(/^HTTP\//);

    // Each of the three connections landed on the sidecar's catch-all and was reset, counted.
    const undeclared = (m: AdminScrape) => m.sum('meshlet_proxy_refusals_total', { direction: 'inbound', code: 'MESHLET_UNDECLARED_PORT' });
    expect(undeclared(await AdminScrape.of(orders.adminUrl)) - undeclared(before)).toBe(3);
    const paths = seenByApp(orders).filter((s) => s.port === UNDECLARED_PORT).map((s) => s.path);
    expect(paths).toEqual(['/inside']);
    expect(seenByApp(orders).some((s) => s.path === '/orders/relay')).toBe(false);
  });

  it('under STRICT a plaintext client from outside the mesh is refused (the node, and a pod without a sidecar)', async () => {
    const before = await AdminScrape.of(orders.adminUrl);
    const fromNode = await plaintextFromHost(orders.pod.ip, APP_PORT, '/orders/plain-node');
    expect(fromNode.reply).not.toMatch(/^HTTP\//);
    const outsider = await cluster.addPod('outsider', { namespace: 'web' });
    const [fromPod] = await callFrom(outsider, [`${ordersUrl}/orders/plain-pod`]);
    expect(fromPod?.status).toBeNull();
    expect(fromPod?.error).not.toBeNull();
    expect(seenByApp(orders).some((s) => s.path.startsWith('/orders/plain'))).toBe(false);

    const after = await AdminScrape.of(orders.adminUrl);
    const refusals = (s: AdminScrape) => s.sum('meshlet_tls_handshake_failures_total', { direction: 'inbound', reason: 'plaintext_on_strict' });
    expect(refusals(after) - refusals(before)).toBe(2);
  });

  it("the app's HTTP probe passes through the rewritten probe path on the admin port", async () => {
    const probes = JSON.parse(orders.sidecarEnv.MESHLET_APP_PROBES ?? '{}') as Record<string, { port: number; path: string }>;
    expect(probes['app/readiness']).toMatchObject({ port: APP_PORT, path: '/healthz' });
    // What kubelet does: GET <pod IP>:15020/app-health/<container>/<kind>, plain HTTP from the node.
    const url = `${orders.adminUrl}/app-health/app/readiness`;
    // The sidecar's own probes (startupProbe and readinessProbe on /ready) answer there too.
    expect((await fetch(`${orders.adminUrl}/ready`)).status).toBe(200);
    expect((await fetch(url)).status).toBe(503);
    await markAppReady(orders);
    expect((await fetch(url)).status).toBe(200);
    expect(seenByApp(orders).filter((s) => s.path === '/healthz').length).toBeGreaterThanOrEqual(2);
  });

  it("SVID rotation of both pods and a policy change during steady traffic: zero failed requests, the new policy enforced", async () => {
    const loop = TrafficLoop.start(frontend.pod, `${ordersUrl}/orders/steady`);
    await loop.advance(20);

    const rotatedOrders = await svids.write(orders.svidDir, ORDERS_ID);
    await waitFor("orders' sidecar to serve its new SVID", async () => ((await handshakeFromHost(orders.pod.ip, APP_PORT, frontend.svid)).serial === rotatedOrders.serial ? true : undefined), { timeoutMs: 30_000 });
    await loop.advance(20);

    const rotatedFrontend = await svids.write(frontend.svidDir, FRONTEND_ID);
    await waitFor("frontend's sidecar to load its new SVID", async () => {
      const m = await AdminScrape.of(frontend.adminUrl);
      return m.sum('meshlet_identity_cert_expiration_timestamp_seconds') === Math.floor(rotatedFrontend.notAfter.getTime() / 1000) ? true : undefined;
    });
    await loop.advance(20);

    // New connections between the sidecars now: concurrent calls make the frontend sidecar
    // open more, each an mTLS handshake with both rotated SVIDs.
    const openBefore = (await listConnections(orders)).filter((c) => c.direction === 'inbound' && c.peerIdentity === FRONTEND_ID).length;
    const burst = await callFrom(frontend.pod, Array.from({ length: 6 }, (_, i) => `${ordersUrl}/orders/burst-${i}`), { parallel: true });
    expect(burst.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200]);
    expect((await listConnections(orders)).filter((c) => c.direction === 'inbound' && c.peerIdentity === FRONTEND_ID).length).toBeGreaterThan(openBefore);

    await kubeletWrite(orders.policyDir, { 'policy.yaml': POLICY_V2 });
    const admin = marker('/admin/after-change');
    await waitFor('the new policy to allow the frontend on /admin', async () => ((await callFrom(frontend.pod, [`${ordersUrl}${admin}`]))[0]?.status === 200 ? true : undefined), { timeoutMs: 30_000 });
    await loop.advance(20);

    const summary = await loop.finish();
    expect(summary.failed, JSON.stringify(summary)).toBe(0);
    expect(summary.ok).toBeGreaterThanOrEqual(80);

    const secret = `/orders/secret/${marker('x')}`;
    const [closed, stillOpen] = await callFrom(frontend.pod, [`${ordersUrl}${secret}`, `${ordersUrl}/orders/after-change`]);
    expect(closed?.status).toBe(403);
    expect(JSON.parse(closed!.body)).toMatchObject({ error: { route: 'secret-orders' } });
    expect(stillOpen?.status).toBe(200);
    expect(seenByApp(orders).some((s) => s.path === secret)).toBe(false);
    const rotations = await AdminScrape.of(orders.adminUrl);
    expect(rotations.sum('meshlet_identity_rotations_total')).toBe(1);
  }, 120_000);

  describe('metrics after a known burst from a fresh pod (5 allowed, 3 denied requests on one connection)', () => {
    let reports: MeshedPod;
    let before: AdminScrape;
    let b: AdminScrape;
    let c: AdminScrape;
    const allowedPaths = Array.from({ length: 5 }, (_, i) => `/orders/report-${i}`);
    const deniedPaths = Array.from({ length: 3 }, (_, i) => `/admin/report-${i}`);

    beforeAll(async () => {
      reports = await startMeshedPod(cluster, svids, {
        name: 'reports',
        namespace: 'web',
        serviceAccount: 'reports',
        declaredPorts: [],
      });
      before = await AdminScrape.of(orders.adminUrl);
      const results = await callFrom(reports.pod, [...allowedPaths, ...deniedPaths].map((p) => `${ordersUrl}${p}`));
      expect(results.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 403, 403, 403]);
      [b, c] = await Promise.all([AdminScrape.of(orders.adminUrl), AdminScrape.of(reports.adminUrl)]);
    }, 90_000);

    it("B's sidecar counted exactly those decisions and denials; its app saw exactly the allowed requests", () => {
      expect(b.sum('meshlet_authz_decisions_total', { caller: REPORTS_ID })).toBe(8);
      expect(b.sum('meshlet_authz_decisions_total', { caller: REPORTS_ID, route: 'list-orders', result: 'allow' })).toBe(5);
      expect(b.sum('meshlet_authz_decisions_total', { caller: REPORTS_ID, route: 'admin', result: 'deny' })).toBe(3);
      const denials = (s: AdminScrape) => s.sum('meshlet_proxy_refusals_total', { direction: 'inbound', code: 'MESHLET_DENIED' });
      expect(denials(b) - denials(before)).toBe(3);
      expect(seenByApp(orders).filter((s) => s.peer === REPORTS_ID).map((s) => s.path)).toEqual(allowedPaths);
    });

    it('both sidecars counted exactly those requests, and the one mTLS connection between them', () => {
      const inbound = { direction: 'inbound', peer: REPORTS_ID };
      expect(b.sum('meshlet_requests_total', inbound)).toBe(8);
      expect(b.sum('meshlet_requests_total', { ...inbound, route: 'list-orders', method: 'GET', status_class: '2xx', authz: 'allow' })).toBe(5);
      expect(b.sum('meshlet_requests_total', { ...inbound, route: 'admin', method: 'GET', status_class: '4xx', authz: 'deny' })).toBe(3);
      expect(b.sum('meshlet_tcp_connections_opened_total', { direction: 'inbound', peer: REPORTS_ID, tls: 'TLSv1.3' })).toBe(1);

      expect(c.sum('meshlet_requests_total', { direction: 'outbound' })).toBe(8);
      expect(c.sum('meshlet_requests_total', { direction: 'outbound', status_class: '2xx' })).toBe(5);
      expect(c.sum('meshlet_requests_total', { direction: 'outbound', status_class: '4xx' })).toBe(3);
      expect(c.sum('meshlet_requests_total', { direction: 'inbound' })).toBe(0);
      expect(c.sum('meshlet_tcp_connections_opened_total', { direction: 'outbound', peer: ORDERS_ID, tls: 'TLSv1.3' })).toBe(1);
    });
  });
});

