// Issue 11 item 12, "IPv6 is not intercepted": on a dual-stack pod, the init container's rules
// used to be IPv4 only, so an IPv6 connection to an app port reached the app directly — no
// mTLS, no policy, no identity — and the app's own IPv6 connections left the pod without the
// sidecar. Here the pods are dual-stack (IPv4 + a ULA IPv6 address on eth0), the app listens
// on `::` as most servers do by default, and every path an IPv6 packet can take is tried for
// real: inbound to a declared port, to an undeclared one, outbound from the app, from the
// sidecar's uid, and over loopback. Needs root, iproute2, iptables (with ip6tables) and a
// kernel with IPv6; skipped with the reason otherwise.
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster, e2eSkipped, mustRun, type Pod, type PodProcess } from './harness/index.ts';
import { callFrom, type CallResult } from './support/app-calls.ts';
import { AdminScrape } from './support/admin-scrape.ts';
import { APP_UID, PROXY_UID, startMeshedPod, type MeshedPod } from './support/meshed-pod.ts';
import { SvidVolumes, type IssuedSvid } from './support/svid-volume.ts';

const CALLER_ID = 'spiffe://cluster.local/ns/web/sa/frontend';
const ORDERS_ID = 'spiffe://cluster.local/ns/shop/sa/orders';
const APP_PORT = 8080;
/** The orders app listens here too (on ::), but the pod spec does not declare it. */
const UNDECLARED_PORT = 9090;
/** The outsider pod's own server, the destination of the orders pod's outbound calls. */
const OUTSIDER_PORT = 7070;
const DUAL_STACK_APP = 'test/e2e/apps/dual-stack-echo.ts';
const MTLS_CALLER = 'test/e2e/apps/mtls-call.ts';

const POLICY = `apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: orders }
spec:
  servers:
    - name: orders
      selector: { serviceAccount: orders }
      ports:
        - { port: ${APP_PORT}, protocol: http }
      routes:
        - name: everything
          path: { prefix: / }
          callers:
            - namespace: web
`;

/** Why IPv6 pods cannot run here, beyond what every e2e suite needs; undefined when they can. */
function ipv6Missing(): string | undefined {
  if (!existsSync('/proc/net/if_inet6')) return 'the kernel has no IPv6 (/proc/net/if_inet6 does not exist)';
  for (const bin of ['ip6tables', 'ip6tables-restore']) {
    if (!['/usr/sbin', '/sbin', '/usr/bin', '/bin'].some((dir) => existsSync(`${dir}/${bin}`))) return `\`${bin}\` not found (apt-get install iptables)`;
  }
  return undefined;
}

function skipped(suite: string): boolean {
  if (e2eSkipped(suite)) return true;
  const why = ipv6Missing();
  if (why) console.warn(`[e2e] SKIPPED ${suite}: ${why}`);
  return why !== undefined;
}

interface Seen {
  app: string;
  port: number;
  method: string;
  path: string;
  peer: string | null;
  remote: string;
}

function seenBy(app: PodProcess): Seen[] {
  return app.stdout
    .split('\n')
    .filter((l) => l.startsWith('seen '))
    .map((l) => JSON.parse(l.slice(5)) as Seen);
}

/** Packets that hit the pod's IPv6 outbound REDIRECT to the sidecar (one per redirected connection: nat sees only a connection's first packet). */
async function outboundRedirects(pod: Pod): Promise<number> {
  const listing = await mustRun('ip', ['netns', 'exec', pod.netns, 'ip6tables', '-w', '-t', 'nat', '-L', 'MESHLET_OUTBOUND', '-n', '-v', '-x']);
  const line = listing.split('\n').find((l) => /\bREDIRECT\b.*redir ports 15001/.test(l));
  if (!line) throw new Error(`no IPv6 outbound REDIRECT rule in ${pod.name}:\n${listing}`);
  return Number(line.trim().split(/\s+/)[0]);
}

describe.skipIf(skipped('IPv6 interception e2e (dual-stack network-namespace pods)'))('IPv6 interception bypass (issue 11 item 12): dual-stack pods', () => {
  let cluster: Cluster;
  let orders: MeshedPod;
  let ordersApp: PodProcess;
  let outsider: Pod;
  let outsiderApp: PodProcess;
  let callerSvidDir: string;
  let callerSvid: IssuedSvid;
  let ordersV6: string;

  beforeAll(async () => {
    cluster = await Cluster.create({ ipv6: true });
    const svids = await SvidVolumes.create();
    // The injected pod as kubelet runs it (init container = `meshlet iptables apply`), minus
    // echo-app: the app here is dual-stack.
    orders = await startMeshedPod(cluster, svids, { name: 'orders', namespace: 'shop', serviceAccount: 'orders', declaredPorts: [APP_PORT], appPorts: [], policy: POLICY });
    ordersV6 = orders.pod.ip6!;
    ordersApp = orders.pod.spawnNode(DUAL_STACK_APP, ['orders', `${APP_PORT},${UNDECLARED_PORT}`], { env: orders.spec.containers[0]!.env, uid: APP_UID, label: 'app' });
    await ordersApp.waitForPort(APP_PORT);
    await ordersApp.waitForPort(UNDECLARED_PORT);
    // A pod outside the mesh (no sidecar, no rules), dual-stack too.
    outsider = await cluster.addPod('outsider', { namespace: 'web' });
    outsiderApp = outsider.spawnNode(DUAL_STACK_APP, ['outsider', String(OUTSIDER_PORT)], { uid: APP_UID, label: 'outsider-app' });
    await outsiderApp.waitForPort(OUTSIDER_PORT);
    // A caller that holds a valid mesh identity but dials the pod directly.
    callerSvidDir = await cluster.volumeDir('caller-svid');
    callerSvid = await svids.write(callerSvidDir, CALLER_ID);
  }, 120_000);

  afterAll(async () => {
    await cluster?.destroy();
  });

  it('the init container installs the IPv6 rules: the same chains as IPv4, ::1 as loopback', async () => {
    expect(orders.pod.ip6).toMatch(/^fd/);
    const saved = await mustRun('ip', ['netns', 'exec', orders.pod.netns, 'ip6tables-save', '-t', 'nat']);
    const rules = saved.split('\n').filter((l) => l.startsWith('-A '));
    expect(rules).toEqual([
      '-A PREROUTING -p tcp -j MESHLET_INBOUND',
      '-A OUTPUT -p tcp -j MESHLET_OUTBOUND',
      '-A MESHLET_INBOUND -p tcp -m tcp --dport 15020 -j RETURN',
      '-A MESHLET_INBOUND -p tcp -m tcp --dport 15100 -j RETURN',
      `-A MESHLET_INBOUND -p tcp -m tcp --dport ${APP_PORT} -j REDIRECT --to-ports 15100`,
      '-A MESHLET_INBOUND -p tcp -j REDIRECT --to-ports 15006',
      `-A MESHLET_OUTBOUND -m owner --uid-owner ${PROXY_UID} -j RETURN`,
      '-A MESHLET_OUTBOUND -o lo -j RETURN',
      '-A MESHLET_OUTBOUND -d ::1/128 -j RETURN',
      '-A MESHLET_OUTBOUND -p tcp -j REDIRECT --to-ports 15001',
    ]);
  });

  it('a plaintext IPv6 caller never reaches the app: it lands on the sidecar, which refuses plaintext (STRICT)', async () => {
    const before = await AdminScrape.of(orders.adminUrl);
    const [r] = await callFrom(outsider, [`http://[${ordersV6}]:${APP_PORT}/v6-plaintext`]);
    expect(r?.status, JSON.stringify(r)).toBeNull();
    expect(r?.error).not.toBeNull();
    const refusals = (s: AdminScrape) => s.sum('meshlet_tls_handshake_failures_total', { direction: 'inbound', reason: 'plaintext_on_strict' });
    expect(refusals(await AdminScrape.of(orders.adminUrl)) - refusals(before)).toBe(1);
    expect(seenBy(ordersApp).some((s) => s.path === '/v6-plaintext')).toBe(false);
  });

  it('an IPv6 caller with a mesh SVID reaches the app only through the sidecar: mTLS 1.3, verified identity, from loopback', async () => {
    const r = await mtlsFrom(outsider, callerSvidDir, `https://[${ordersV6}]:${APP_PORT}/v6-mtls`);
    expect(r.status, JSON.stringify(r)).toBe(200);
    expect(r.protocol).toBe('TLSv1.3');
    expect(r.serverId).toBe(ORDERS_ID);
    const seen = JSON.parse(r.body) as Seen;
    expect(seen).toMatchObject({ app: 'orders', port: APP_PORT, path: '/v6-mtls', peer: callerSvid.spiffeId });
    // The sidecar forwards over IPv4 loopback; a direct IPv6 caller would show its fd… address.
    expect(seen.remote).toMatch(/^(::ffff:)?127\./);
  });

  it('an undeclared port over IPv6 is reset by the catch-all (and the outbound listener is no relay), never reaching the app', async () => {
    // The app really serves the undeclared port: from inside its pod, over IPv6 loopback, it answers.
    const [inside] = await callFrom(orders.pod, [`http://[::1]:${UNDECLARED_PORT}/v6-inside`]);
    expect(inside?.status, JSON.stringify(inside)).toBe(200);

    const before = await AdminScrape.of(orders.adminUrl);
    const [undeclared, relay] = await callFrom(outsider, [`http://[${ordersV6}]:${UNDECLARED_PORT}/v6-undeclared`, `http://[${ordersV6}]:15001/v6-relay`], { parallel: true });
    expect(undeclared, JSON.stringify(undeclared)).toMatchObject({ status: null, error: 'ECONNRESET' });
    expect(relay, JSON.stringify(relay)).toMatchObject({ status: null, error: 'ECONNRESET' });
    const resets = (s: AdminScrape) => s.sum('meshlet_proxy_refusals_total', { direction: 'inbound', code: 'MESHLET_UNDECLARED_PORT' });
    expect(resets(await AdminScrape.of(orders.adminUrl)) - resets(before)).toBe(2);
    expect(seenBy(ordersApp).filter((s) => s.port === UNDECLARED_PORT).map((s) => s.path)).toEqual(['/v6-inside']);
  });

  it("the app's outbound IPv6 TCP is redirected to the sidecar; the sidecar's own uid and loopback are not", async () => {
    const target = `http://[${outsider.ip6}]:${OUTSIDER_PORT}`;
    const redirectsBefore = await outboundRedirects(orders.pod);

    // The app (uid 1000): its connection is redirected to [::1]:15001, the sidecar's outbound
    // port. It never leaves the pod as the app's own connection.
    const [fromApp] = await callFrom(orders.pod, [`${target}/v6-from-app`]);
    expect(await outboundRedirects(orders.pod)).toBe(redirectsBefore + 1);
    // The sidecar's outbound listener on [::1] answered it: mesh by default, so it dialed the
    // (unmeshed) outsider with mTLS, which fails — never a plaintext fallback.
    expect(fromApp, JSON.stringify(fromApp)).toMatchObject({ status: 502, meshletError: 'MESHLET_UPSTREAM_TLS_FAILED' });
    expect(seenBy(outsiderApp).filter((s) => s.path === '/v6-from-app' && s.remote === ordersV6 && s.peer !== null)).toEqual([]);

    // The sidecar's uid is exempt (its connections would loop otherwise): it reaches the outsider directly.
    const [fromProxyUid] = await callFrom(orders.pod, [`${target}/v6-from-proxy-uid`], { uid: PROXY_UID });
    expect(fromProxyUid?.status, JSON.stringify(fromProxyUid)).toBe(200);
    expect((JSON.parse(fromProxyUid!.body) as Seen).remote).toBe(ordersV6);

    // Loopback stays inside the pod: the app reaches itself over ::1 without the sidecar.
    const [loopback] = await callFrom(orders.pod, [`http://[::1]:${APP_PORT}/v6-loopback`]);
    expect(loopback?.status, JSON.stringify(loopback)).toBe(200);
    expect((JSON.parse(loopback!.body) as Seen).remote).toBe('::1');

    expect(await outboundRedirects(orders.pod)).toBe(redirectsBefore + 1);
  });
});

interface MtlsResult extends Omit<CallResult, 'meshletError'> {
  protocol: string | null;
  serverId: string | null;
}

/** Runs mtls-call.ts in `pod` (as root: the SVID key in the volume is the test's) and returns its one result. */
async function mtlsFrom(pod: Pod, svidDir: string, url: string): Promise<MtlsResult> {
  const r = await pod.execNode(MTLS_CALLER, [svidDir, url], { label: 'mtls-call' });
  const line = r.stdout.split('\n').find((l) => l.startsWith('result '));
  if (r.code !== 0 || !line) throw new Error(`mtls-call in ${pod.name} exited ${r.code}: ${r.stderr.trim()} ${r.stdout.trim()}`);
  return JSON.parse(line.slice(7)) as MtlsResult;
}
