// Issue 14, "Done means": Debian's redis-server between two meshed pods, TLS proven on the wire,
// through real interception, with discovery. Nothing in either pod is configured for the other:
// the app runs plain `redis-cli -h redis.shop`, iptables redirects it to its sidecar, the sidecar
// asks the identity service's Resolve about the original destination (the Service VIP, port
// 6379), hears "meshed, spiffe://…/sa/cache", and carries the bytes inside mTLS to it; the node
// DNATs the VIP to the cache pod, whose injected rules hand port 6379 (opaque TCP: the injector's
// WELL_KNOWN_OPAQUE_PORTS) to its sidecar, which authorizes the caller by policy and splices to
// redis-server on loopback. The same app's plain HTTP to `legacy.shop`, a pod outside the mesh,
// is answered "unmeshed" by discovery and goes in plaintext.
//
// Where things run (the network-namespace cluster, docs/e2e.md):
//
//   root namespace (the test)                      mlnode-<run> (bridge, Service DNAT)
//     API server stand-in  https://10.213.<o>.254 ◀──── pod meshlet-system/identity
//     (test/support/kube-api-stand-in.ts)                `meshlet identity`, MESHLET_DISCOVERY=on,
//                                                         :8443 Certify + Resolve, :9090 admin
//   pod shop/app      (sa app)      redis-cli ─▶ sidecar ══mTLS══▶ VIP:6379 ─▶ pod shop/cache (sa cache)
//   pod shop/intruder (sa intruder) redis-cli ─▶ sidecar ══mTLS══▶ (denied)      sidecar ─▶ redis-server 127.0.0.1:6379
//
// How the pods reach the identity service, and it the API: the identity service runs in a pod of
// its own (like the Deployment in meshlet-system), so the harness starts, stops and sweeps it
// with the rest of the run, and sidecars reach it pod to pod over the bridge (their own uid 2020
// is never redirected). The API stand-in has to live in the test process (it is built from the
// pods' real addresses), so it listens on the host link's address (cluster.hostIp, 10.213.<o>.254
// on the bridge's subnet, in the root namespace), which every pod reaches directly on the bridge;
// its certificate names that address. The identity service uses the e2e suite's CA (the same
// SvidVolumes CA that signs every pod's SVID) and issues its own serving SVID from it
// (spiffe://cluster.local/ns/meshlet-system/sa/meshlet-identity), which the sidecars' discovery
// clients verify against the bundle in their SVID volume. The sidecars keep the files identity
// source (no TokenReview API here, as in the rest of the e2e suite): only Resolve is asked of it.
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCa } from '../../src/control-plane/identity-service/ca.ts';
import { ANNOTATIONS } from '../../src/control-plane/injector/patch/annotations.ts';
import { runCommandSync } from '../../src/dev/netns/command-runner.ts';
import { startKubeApiStandIn, type KubeApiStandIn } from '../support/kube-api-stand-in.ts';
import { Cluster, e2eSkipped, mustRun, type Pod, type PodProcess, type Service } from './harness/index.ts';
import { AdminScrape } from './support/admin-scrape.ts';
import { callFrom } from './support/app-calls.ts';
import { APP_UID, startMeshedPod, type MeshedPod } from './support/meshed-pod.ts';
import { SvidVolumes } from './support/svid-volume.ts';
import { tcpdumpAvailable, WireCapture } from './support/wire-capture.ts';

const REDIS_PORT = 6379;
/** An HTTP app outside the mesh (no sidecar): legacy.shop:80 -> 8080. */
const LEGACY_PORT = 8080;
const IDENTITY_PORT = 8443;
const IDENTITY_ADMIN_PORT = 9090;
const API_TOKEN = 'identity-watch-token';
const id = (ns: string, sa: string) => `spiffe://cluster.local/ns/${ns}/sa/${sa}`;
const APP_ID = id('shop', 'app');
const CACHE_ID = id('shop', 'cache');
const INTRUDER_ID = id('shop', 'intruder');

/** Only the app's ServiceAccount may open connections to redis; everyone else is denied. */
const CACHE_POLICY = `apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: cache }
spec:
  servers:
    - name: cache
      selector: { serviceAccount: cache }
      default: deny
      ports:
        - { port: ${REDIS_PORT}, protocol: tcp }
      routes:
        - name: redis
          port: ${REDIS_PORT}
          callers:
            - spiffeId: ${APP_ID}
`;

/** Skips the suite, saying why, when Debian's redis-server (and the redis-tools it brings) is missing. */
function redisMissing(): boolean {
  const missing = ['redis-server', 'redis-cli'].filter((c) => runCommandSync(c, ['--version']).code !== 0);
  if (missing.length > 0) console.warn(`[e2e] SKIPPED redis between meshed pods: ${missing.join(', ')} not installed (apt-get install -y redis-server)`);
  return missing.length > 0;
}

/** A Pod as the API server lists it: injected (the injector's status annotation) or not, running, ready. */
function podObject(p: Pod, o: { serviceAccount: string; meshed: boolean; labels: Record<string, string>; ports?: { name: string; containerPort: number }[] }) {
  return {
    metadata: { name: p.name, namespace: p.namespace, resourceVersion: '1', labels: o.labels, annotations: o.meshed ? { [ANNOTATIONS.status]: '{"version":1}' } : {} },
    spec: { serviceAccountName: o.serviceAccount, containers: [{ name: 'app', ports: (o.ports ?? []).map((x) => ({ ...x, protocol: 'TCP' })) }] },
    status: { phase: 'Running', podIP: p.ip, podIPs: [{ ip: p.ip }], conditions: [{ type: 'Ready', status: 'True' }] },
  };
}

/** A Service and its EndpointSlice, as the API holds them (one ready endpoint). */
function serviceObjects(svc: Service, pod: Pod, port: { name: string; port: number; targetPort: number }) {
  return {
    service: {
      metadata: { name: svc.name, namespace: svc.namespace, resourceVersion: '1' },
      spec: { type: 'ClusterIP', clusterIP: svc.vip, clusterIPs: [svc.vip], selector: { app: pod.name }, ports: [{ name: port.name, protocol: 'TCP', port: port.port, targetPort: port.targetPort }] },
    },
    slice: {
      metadata: { name: `${svc.name}-q9w2e`, namespace: svc.namespace, resourceVersion: '1', labels: { 'kubernetes.io/service-name': svc.name } },
      addressType: 'IPv4',
      ports: [{ name: port.name, protocol: 'TCP', port: port.targetPort }],
      endpoints: [{ addresses: [pod.ip], conditions: { ready: true }, targetRef: { kind: 'Pod', name: pod.name, namespace: pod.namespace } }],
    },
  };
}

/** What the identity service's watch sees: the three meshed pods, itself, Service redis.shop and its EndpointSlice, and the unmeshed legacy.shop. */
function clusterObjects(pods: { cache: Pod; app: Pod; intruder: Pod; identity: Pod; legacy: Pod }, redis: Service, legacy: Service): Record<string, unknown[]> {
  const legacyObjects = serviceObjects(legacy, pods.legacy, { name: 'http', port: 80, targetPort: LEGACY_PORT });
  return {
    '/api/v1/pods': [
      podObject(pods.legacy, { serviceAccount: 'legacy', meshed: false, labels: { app: 'legacy' }, ports: [{ name: 'http', containerPort: LEGACY_PORT }] }),
      podObject(pods.cache, { serviceAccount: 'cache', meshed: true, labels: { app: 'cache' }, ports: [{ name: 'redis', containerPort: REDIS_PORT }] }),
      podObject(pods.app, { serviceAccount: 'app', meshed: true, labels: { app: 'app' } }),
      podObject(pods.intruder, { serviceAccount: 'intruder', meshed: true, labels: { app: 'intruder' } }),
      podObject(pods.identity, { serviceAccount: 'meshlet-identity', meshed: false, labels: { app: 'meshlet-identity' } }),
    ],
    '/api/v1/services': [
      {
        metadata: { name: redis.name, namespace: redis.namespace, resourceVersion: '1' },
        spec: { type: 'ClusterIP', clusterIP: redis.vip, clusterIPs: [redis.vip], selector: { app: 'cache' }, ports: [{ name: 'tcp-redis', protocol: 'TCP', port: REDIS_PORT, targetPort: REDIS_PORT }] },
      },
      legacyObjects.service,
    ],
    '/apis/discovery.k8s.io/v1/endpointslices': [
      {
        metadata: { name: `${redis.name}-x7k2p`, namespace: redis.namespace, resourceVersion: '1', labels: { 'kubernetes.io/service-name': redis.name } },
        addressType: 'IPv4',
        ports: [{ name: 'tcp-redis', protocol: 'TCP', port: REDIS_PORT }],
        endpoints: [{ addresses: [pods.cache.ip], conditions: { ready: true }, targetRef: { kind: 'Pod', name: pods.cache.name, namespace: pods.cache.namespace } }],
      },,
      legacyObjects.slice
    ],
  };
}

/** `redis-cli -h redis.shop -p 6379 <args>` run by the pod's app (uid 1000: its traffic is redirected). */
async function redisCli(pod: Pod, args: string[]): Promise<{ code: number | null; out: string }> {
  const r = await pod.exec('redis-cli', ['-h', 'redis.shop', '-p', String(REDIS_PORT), ...args], { uid: APP_UID, label: 'redis-cli' });
  return { code: r.code, out: `${r.stdout}${r.stderr}`.trim() };
}

/** What redis-server itself has seen, asked on loopback inside the cache pod (loopback is not redirected). */
async function redisStats(cache: Pod): Promise<{ connectionsReceived: number }> {
  const r = await cache.exec('redis-cli', ['-h', '127.0.0.1', '-p', String(REDIS_PORT), 'INFO', 'stats'], { uid: APP_UID, label: 'redis-info' });
  const m = /total_connections_received:(\d+)/.exec(r.stdout);
  if (!m) throw new Error(`redis INFO stats without total_connections_received: ${r.stdout} ${r.stderr}`);
  // This INFO connection is counted too: the number is "received before this one" + 1.
  return { connectionsReceived: Number(m[1]) };
}

async function redisLocal(cache: Pod, args: string[]): Promise<string> {
  const r = await cache.exec('redis-cli', ['-h', '127.0.0.1', '-p', String(REDIS_PORT), ...args], { uid: APP_UID, label: 'redis-local' });
  return r.stdout.trim();
}

/** Redirected outbound connections of a pod (the nat REDIRECT to 15001 counts each connection's first packet). */
async function outboundRedirects(pod: Pod): Promise<number> {
  const listing = await mustRun('ip', ['netns', 'exec', pod.netns, 'iptables', '-w', '-t', 'nat', '-L', 'MESHLET_OUTBOUND', '-n', '-v', '-x']);
  const line = listing.split('\n').find((l) => /\bREDIRECT\b.*redir ports 15001/.test(l));
  return Number(line?.trim().split(/\s+/)[0] ?? NaN);
}

/** Plaintext bytes from the test process to a pod port: a control for the capture (the STRICT sidecar refuses them, but they were on the wire). */
function plaintextFromHost(ip: string, port: number, bytes: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const s = connect({ host: ip, port }, () => s.write(bytes));
    s.on('error', () => resolve());
    s.on('close', () => resolve());
    s.setTimeout(5_000, () => s.destroy());
  });
}

/** RESP, as redis-cli sends a command: no part of it may cross the wire in clear. */
const resp = (...args: string[]) => Buffer.from(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);

describe.skipIf(e2eSkipped('redis between meshed pods (network-namespace pods)') || redisMissing())('redis-server between two meshed pods, through interception and discovery', () => {
  let cluster: Cluster;
  let api: KubeApiStandIn;
  let identityPod: Pod;
  let legacyPod: Pod;
  let legacy: Service;
  let identity: PodProcess;
  let cache: MeshedPod;
  let app: MeshedPod;
  let intruder: MeshedPod;
  let redisServer: PodProcess;
  let redis: Service;
  let identityAdmin: string;

  beforeAll(async () => {
    cluster = await Cluster.create();
    const svids = await SvidVolumes.create();

    // The identity service's pod first: every sidecar is told its address.
    identityPod = await cluster.addPod('identity', { namespace: 'meshlet-system' });
    identityAdmin = `http://${identityPod.ip}:${IDENTITY_ADMIN_PORT}`;
    const discoveryEnv = {
      MESHLET_DISCOVERY: 'on',
      MESHLET_CA_ADDRESS: `${identityPod.ip}:${IDENTITY_PORT}`,
      MESHLET_POD_CIDRS: cluster.podCidr,
      MESHLET_SERVICE_CIDRS: cluster.serviceCidr,
    };

    cache = await startMeshedPod(cluster, svids, {
      name: 'cache',
      namespace: 'shop',
      serviceAccount: 'cache',
      declaredPorts: [{ containerPort: REDIS_PORT, name: 'redis' }],
      appPorts: [], // the app is redis-server, started below
      policy: CACHE_POLICY,
      sidecarEnv: discoveryEnv,
    });
    const redisDir = await cluster.volumeDir('cache-redis');
    await mustRun('chown', [`${APP_UID}:${APP_UID}`, redisDir]);
    // Debian's redis-server as the container would run it: in the foreground, as the app uid,
    // on loopback (the sidecar dials 127.0.0.1:6379; nothing else in or out of the pod can).
    redisServer = cache.pod.spawn(
      'redis-server',
      ['--port', String(REDIS_PORT), '--bind', '127.0.0.1', '--protected-mode', 'no', '--save', '', '--appendonly', 'no', '--dir', redisDir, '--daemonize', 'no', '--logfile', ''],
      { uid: APP_UID, label: 'redis-server' },
    );
    await redisServer.waitForPort(REDIS_PORT);

    app = await startMeshedPod(cluster, svids, { name: 'app', namespace: 'shop', serviceAccount: 'app', declaredPorts: [], sidecarEnv: discoveryEnv });
    intruder = await startMeshedPod(cluster, svids, { name: 'intruder', namespace: 'shop', serviceAccount: 'intruder', declaredPorts: [], sidecarEnv: discoveryEnv });
    redis = await cluster.addService({ name: 'redis', namespace: 'shop', pod: cache.pod, ports: [{ port: REDIS_PORT, targetPort: REDIS_PORT }] });
    // A pod outside the mesh in the same namespace: no sidecar, plain HTTP.
    legacyPod = await cluster.addPod('legacy', { namespace: 'shop' });
    const legacyApp = legacyPod.spawnNode('test/e2e/apps/echo-app.ts', ['legacy', String(LEGACY_PORT)], { uid: APP_UID, label: 'legacy-app' });
    await legacyApp.waitForPort(LEGACY_PORT);
    legacy = await cluster.addService({ name: 'legacy', namespace: 'shop', pod: legacyPod, ports: [{ port: 80, targetPort: LEGACY_PORT }] });

    // The API server as the identity service's watch sees it, now that every address is known.
    api = await startKubeApiStandIn({ token: API_TOKEN, host: cluster.hostIp!, objects: clusterObjects({ cache: cache.pod, app: app.pod, intruder: intruder.pod, identity: identityPod, legacy: legacyPod }, redis, legacy) });
    const identityDir = await cluster.volumeDir('identity');
    await writeCa(join(identityDir, 'ca'), svids.ca);
    await writeFile(join(identityDir, 'api-token'), `${API_TOKEN}\n`);
    await writeFile(join(identityDir, 'api-ca.crt'), api.caPem);
    identity = identityPod.spawnNode('bin/meshlet.js', ['identity'], {
      label: 'meshlet-identity',
      env: {
        MESHLET_CA_DIR: join(identityDir, 'ca'),
        MESHLET_IDENTITY_LISTEN: `0.0.0.0:${IDENTITY_PORT}`,
        MESHLET_IDENTITY_ADMIN_LISTEN: `0.0.0.0:${IDENTITY_ADMIN_PORT}`,
        MESHLET_KUBERNETES_API_URL: api.url,
        MESHLET_KUBERNETES_CA_FILE: join(identityDir, 'api-ca.crt'),
        MESHLET_KUBERNETES_TOKEN_FILE: join(identityDir, 'api-token'),
        MESHLET_DISCOVERY: 'on',
        MESHLET_POD_CIDRS: cluster.podCidr,
        MESHLET_SERVICE_CIDRS: cluster.serviceCidr,
      },
    });
    await identity.waitForLine('"event":"discovery_synced"', { timeoutMs: 30_000 });
  }, 180_000);

  afterAll(async () => {
    await cluster?.destroy();
    await api?.close();
  });

  it("the app's SET and GET by Service name reach redis through both sidecars, the destination resolved by discovery", async () => {
    const redirectsBefore = await outboundRedirects(app.pod);
    const resolvedBefore = (await AdminScrape.of(identityAdmin)).sum('meshlet_discovery_resolves_total', { kind: 'meshed' });
    const set = await redisCli(app.pod, ['SET', 'k', 'v']);
    expect(set, JSON.stringify(set)).toEqual({ code: 0, out: 'OK' });
    const get = await redisCli(app.pod, ['GET', 'k']);
    expect(get, JSON.stringify(get)).toEqual({ code: 0, out: 'v' });
    // Both connections were redirected to the app's sidecar, never sent around it …
    expect(await outboundRedirects(app.pod)).toBe(redirectsBefore + 2);
    // … which asked the identity service (the answer is then cached for 10 s) …
    expect((await AdminScrape.of(identityAdmin)).sum('meshlet_discovery_resolves_total', { kind: 'meshed' })).toBeGreaterThan(resolvedBefore);
    // … and redis holds what the app wrote.
    expect(await redisLocal(cache.pod, ['GET', 'k'])).toBe('v');
  });

  it.skipIf(!tcpdumpAvailable())('on the wire into the cache pod only TLS passes: no redis command in clear, a TLS handshake and TLS records', async () => {
    const capture = await WireCapture.start(cache.pod, `${await cluster.volumeDir('capture')}/cache.pcap`);
    const value = `v-${randomBytes(6).toString('hex')}`;
    const set = await redisCli(app.pod, ['SET', 'k', value]);
    const get = await redisCli(app.pod, ['GET', 'k']);
    // A control: the same capture DOES show plaintext RESP sent to the pod (refused by the STRICT
    // sidecar, but on the wire). Sent last: once tcpdump has written it, it has written the rest.
    const control = `control-${randomBytes(6).toString('hex')}`;
    await plaintextFromHost(cache.pod.ip, REDIS_PORT, resp('PING', control));
    await capture.waitForBytes('the capture to hold the plaintext control', Buffer.from(control));
    const pcap = await capture.stop();
    expect(set.out).toBe('OK');
    expect(get.out).toBe(value);
    expect(pcap.includes(resp('PING', control))).toBe(true);
    for (const clear of [resp('SET', 'k', value), resp('GET', 'k'), Buffer.from(value), Buffer.from('$3\r\nSET\r\n'), Buffer.from('$3\r\nGET\r\n')]) {
      expect(pcap.includes(clear), `${JSON.stringify(clear.toString())} in clear on the wire`).toBe(false);
    }
    expect(pcap.includes(Buffer.from([0x16, 0x03, 0x01]))).toBe(true); // a TLS handshake record (the ClientHello's record header)
    expect(pcap.includes(Buffer.from([0x17, 0x03, 0x03]))).toBe(true); // TLS application_data records
  });

  it("the cache sidecar authorizes each connection once, for the app's verified identity, and counts it", async () => {
    const [cacheBefore, appBefore] = await Promise.all([AdminScrape.of(cache.adminUrl), AdminScrape.of(app.adminUrl)]);
    const get = await redisCli(app.pod, ['GET', 'k']);
    expect(get.code).toBe(0);
    const [cacheAfter, appAfter] = await Promise.all([AdminScrape.of(cache.adminUrl), AdminScrape.of(app.adminUrl)]);
    const delta = (before: AdminScrape, after: AdminScrape, name: string, labels: Record<string, string>) => after.sum(name, labels) - before.sum(name, labels);
    expect(delta(cacheBefore, cacheAfter, 'meshlet_authz_decisions_total', { route: 'redis', caller: APP_ID, result: 'allow' })).toBe(1);
    expect(delta(cacheBefore, cacheAfter, 'meshlet_authz_decisions_total', { result: 'deny' })).toBe(0);
    expect(delta(cacheBefore, cacheAfter, 'meshlet_tcp_connections_opened_total', { direction: 'inbound', peer: APP_ID, tls: 'TLSv1.3' })).toBe(1);
    // The app's sidecar: one mTLS connection whose server proved to be the cache's identity.
    expect(delta(appBefore, appAfter, 'meshlet_tcp_connections_opened_total', { direction: 'outbound', peer: CACHE_ID, tls: 'TLSv1.3' })).toBe(1);
  });

  it("a meshed pod the cache's policy does not allow is closed before redis sees a connection", async () => {
    const [before, statsBefore] = await Promise.all([AdminScrape.of(cache.adminUrl), redisStats(cache.pod)]);
    const r = await redisCli(intruder.pod, ['SET', 'intruder', 'x']);
    // The app's sidecar accepted the connection and then closed it when the cache's sidecar did.
    expect(r.code, JSON.stringify(r)).not.toBe(0);
    expect(r.out).toMatch(/^Error: (Server closed the connection|Connection reset by peer)/);
    const [after, statsAfter] = await Promise.all([AdminScrape.of(cache.adminUrl), redisStats(cache.pod)]);
    // Only the second INFO connection is new to redis: the intruder's never reached it.
    expect(statsAfter.connectionsReceived - statsBefore.connectionsReceived).toBe(1);
    expect(await redisLocal(cache.pod, ['EXISTS', 'intruder'])).toBe('0');
    const delta = (name: string, labels: Record<string, string>) => after.sum(name, labels) - before.sum(name, labels);
    expect(delta('meshlet_authz_decisions_total', { caller: INTRUDER_ID, result: 'deny' })).toBe(1);
    expect(delta('meshlet_proxy_refusals_total', { direction: 'inbound', code: 'MESHLET_DENIED' })).toBe(1);
    expect(delta('meshlet_authz_decisions_total', { result: 'allow' })).toBe(0);
  });

  it('plain HTTP to an unmeshed pod by Service name: discovery says unmeshed, the sidecar sends it in plaintext (no identity header)', async () => {
    const [r] = await callFrom(app.pod, ['http://legacy.shop/plain']);
    expect(r?.status, JSON.stringify(r)).toBe(200);
    expect(JSON.parse(r!.body)).toMatchObject({ app: 'legacy', path: '/plain', peer: null });
  });
});
