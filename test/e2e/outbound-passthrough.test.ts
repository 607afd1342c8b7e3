// Issue 14, "the app's own outbound TLS and non-HTTP TCP break": all outbound TCP of a meshed
// pod is redirected to its sidecar, which used to speak only HTTP to it ("wrong version number"
// for HTTPS, a dead connection for anything else). Now the sidecar reads each redirected
// connection's original destination (the native addon) and its first bytes: HTTP goes through
// the mesh as before; the app's own TLS and any other TCP pass through to where the app was
// going, untouched. Real pods, the injector's real iptables rules, servers outside the mesh.
import { X509Certificate } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueSvid } from '../../src/control-plane/identity-service/ca.ts';
import { Cluster, e2eSkipped, mustRun, type Pod, type PodProcess } from './harness/index.ts';
import { AdminScrape } from './support/admin-scrape.ts';
import { APP_UID, startMeshedPod, type MeshedPod } from './support/meshed-pod.ts';
import { SvidVolumes } from './support/svid-volume.ts';

const SERVERS = 'test/e2e/apps/outside-servers.ts';
const CLIENTS = 'test/e2e/apps/raw-clients.ts';

async function client(pod: Pod, args: string[]): Promise<Record<string, unknown>> {
  const r = await pod.execNode(CLIENTS, args, { uid: APP_UID, label: 'raw-client' });
  const line = r.stdout.split('\n').find((l) => l.startsWith('result '));
  if (!line) throw new Error(`raw-clients ${args.join(' ')} printed no result: ${r.stderr} ${r.stdout}`);
  return JSON.parse(line.slice(7)) as Record<string, unknown>;
}

/** Redirected outbound connections of a pod (the nat REDIRECT to 15001 counts each connection's first packet). */
async function outboundRedirects(pod: Pod): Promise<number> {
  const listing = await mustRun('ip', ['netns', 'exec', pod.netns, 'iptables', '-w', '-t', 'nat', '-L', 'MESHLET_OUTBOUND', '-n', '-v', '-x']);
  const line = listing.split('\n').find((l) => /\bREDIRECT\b.*redir ports 15001/.test(l));
  return Number(line?.trim().split(/\s+/)[0] ?? NaN);
}

describe.skipIf(e2eSkipped('transparent outbound e2e (network-namespace pods)'))("transparent outbound: the app's own TLS and non-HTTP TCP pass through", () => {
  let cluster: Cluster;
  let app: MeshedPod;
  let strict: MeshedPod;
  let outside: Pod;
  let servers: PodProcess;
  let fingerprint: string;

  beforeAll(async () => {
    cluster = await Cluster.create();
    const svids = await SvidVolumes.create();
    // A server certificate of its own (the client does not verify it; the test compares fingerprints).
    const dir = await cluster.volumeDir('outside-tls');
    const own = await issueSvid(svids.ca, { spiffeId: 'spiffe://cluster.local/outside/server' });
    await writeFile(join(dir, 'tls.crt'), own.certChainPem);
    await writeFile(join(dir, 'tls.key'), own.privateKeyPem, { mode: 0o644 });
    fingerprint = new X509Certificate(own.certChainPem).fingerprint256;
    outside = await cluster.addPod('outside', { namespace: 'ext' });
    servers = outside.spawnNode(SERVERS, [join(dir, 'tls.crt'), join(dir, 'tls.key')], { uid: APP_UID, label: 'outside-servers' });
    await servers.waitForLine('listening');
    await cluster.addService({ name: 'outside', namespace: 'ext', pod: outside, ports: [{ port: 443, targetPort: 8443 }, { port: 2525, targetPort: 2525 }] });
    app = await startMeshedPod(cluster, svids, { name: 'app', namespace: 'shop', serviceAccount: 'app', declaredPorts: [8080] });
    strict = await startMeshedPod(cluster, svids, { name: 'locked', namespace: 'shop', serviceAccount: 'locked', declaredPorts: [8080], sidecarEnv: { MESHLET_OUTBOUND_PASSTHROUGH: 'deny' } });
  }, 120_000);

  afterAll(async () => {
    await cluster?.destroy();
  });

  it("HTTPS to a server outside the mesh by IP: the app's TLS reaches the server untouched (the server's own certificate), through the sidecar", async () => {
    const before = await outboundRedirects(app.pod);
    const r = await client(app.pod, ['https', `https://${outside.ip}:8443/by-ip`]);
    expect(r, JSON.stringify(r)).toMatchObject({ status: 200, error: null, peerFingerprint: fingerprint });
    expect(JSON.parse(r.body as string)).toMatchObject({ fingerprint, path: '/by-ip' });
    expect(await outboundRedirects(app.pod)).toBe(before + 1);
  });

  it('HTTPS by Service name: the SNI the app sent arrives at the server', async () => {
    const r = await client(app.pod, ['https', 'https://outside.ext.svc.cluster.local/by-name']);
    expect(r, JSON.stringify(r)).toMatchObject({ status: 200, peerFingerprint: fingerprint });
    expect(JSON.parse(r.body as string)).toMatchObject({ sni: 'outside.ext.svc.cluster.local', path: '/by-name' });
  });

  it('a server-speaks-first protocol on a port nobody declared: the greeting arrives (after the detection wait), and the conversation works', async () => {
    const r = await client(app.pod, ['greet', 'outside.ext', '2525']);
    expect(r, JSON.stringify(r)).toEqual({ lines: ['220 outside ready', '250 HELO app'], error: null });
  });

  it('a binary client-first protocol: every byte comes back', async () => {
    const r = await client(app.pod, ['echo', outside.ip, '7000']);
    expect(r, JSON.stringify(r)).toEqual({ echoed: '00ff1337', error: null });
  });

  it('with MESHLET_OUTBOUND_PASSTHROUGH=deny the same connections are refused, each counted as MESHLET_PASSTHROUGH_DENIED', async () => {
    const before = await AdminScrape.of(strict.adminUrl);
    const tls = await client(strict.pod, ['https', `https://${outside.ip}:8443/denied`]);
    expect(tls.status, JSON.stringify(tls)).toBeNull();
    const echo = await client(strict.pod, ['echo', outside.ip, '7000']);
    expect(echo.echoed ?? null, JSON.stringify(echo)).toBeNull();
    const denied = (s: AdminScrape) => s.sum('meshlet_proxy_refusals_total', { direction: 'outbound', code: 'MESHLET_PASSTHROUGH_DENIED' });
    expect(denied(await AdminScrape.of(strict.adminUrl)) - denied(before)).toBe(2);
  });
});
