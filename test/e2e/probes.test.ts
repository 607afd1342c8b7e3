// Issue 14 item 5, end to end in a network-namespace pod with the injector's real iptables
// rules: kubelet's grpc probe on a meshed STRICT port and its httpGet/tcpSocket probes on a
// port the pod does not declare would fail (refused by the STRICT listener, reset by the
// catch-all); rewritten by `meshlet inject`, they answer through the admin port and test the
// app for real. Needs root + iptables (skipped with the reason otherwise).
import { rm, writeFile } from 'node:fs/promises';
import { connect as tcpConnect } from 'node:net';
import { connect as http2Connect } from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { kubeletWrite } from '../support/kubelet-volume.ts';
import { Cluster, e2eSkipped, HarnessError, mountEnv, nodeBinary, readInjectedPod, repoRoot, runCommand, type Pod, type PodProcess } from './harness/index.ts';
import { ADMIN_PORT, APP_UID } from './support/meshed-pod.ts';
import { SvidVolumes } from './support/svid-volume.ts';

const GRPC_PORT = 9000;
/** Like ingress-nginx's health port: served by the app, not declared in the pod spec. */
const UNDECLARED_HEALTH_PORT = 10254;

const MANIFEST = `apiVersion: v1
kind: Pod
metadata: {name: probed, namespace: shop, labels: {app: probed}}
spec:
  serviceAccountName: probed
  containers:
    - name: app
      image: probed:1
      ports:
        - {name: grpc, containerPort: ${GRPC_PORT}, appProtocol: grpc}
      readinessProbe:
        grpc: {port: ${GRPC_PORT}}
        periodSeconds: 2
        timeoutSeconds: 2
      livenessProbe:
        httpGet: {path: /healthz, port: ${UNDECLARED_HEALTH_PORT}}
        periodSeconds: 10
      startupProbe:
        tcpSocket: {port: ${UNDECLARED_HEALTH_PORT}}
        failureThreshold: 30
`;

type HttpGetProbe = { httpGet: { path: string; port: number; scheme: string }; [k: string]: unknown };

/** kubelet's original plaintext gRPC health call, from the node: what a STRICT port does to it. */
function plaintextGrpcFromHost(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const session = http2Connect(`http://${host}:${port}`);
    const timer = setTimeout(() => finish('timeout'), 5_000);
    let done = false;
    const finish = (what: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      session.destroy();
      resolve(what);
    };
    session.on('error', (err: NodeJS.ErrnoException) => finish(`error ${err.code ?? err.message}`));
    const stream = session.request({ ':method': 'POST', ':path': '/grpc.health.v1.Health/Check', 'content-type': 'application/grpc', te: 'trailers' });
    stream.on('response', (h) => finish(`answered ${String(h[':status'])} grpc-status ${String(h['grpc-status'])}`));
    stream.on('error', (err: NodeJS.ErrnoException) => finish(`error ${err.code ?? err.message}`));
    stream.on('close', () => finish(`closed (stream code ${stream.rstCode})`));
    session.on('close', () => finish('closed'));
    stream.end(Buffer.from([0, 0, 0, 0, 0]));
  });
}

/** kubelet's original plaintext GET, from the node, over raw TCP: whatever came back. */
function plaintextGetFromHost(host: string, port: number, path: string): Promise<{ reply: string; error: string | null }> {
  return new Promise((resolve) => {
    let reply = '';
    const s = tcpConnect({ host, port }, () => s.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`));
    s.setTimeout(5_000, () => s.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    s.setEncoding('latin1').on('data', (d: string) => (reply += d));
    s.on('close', () => resolve({ reply, error: null }));
    s.on('error', (err: NodeJS.ErrnoException) => resolve({ reply, error: err.code ?? err.message }));
  });
}

describe.skipIf(e2eSkipped('probes e2e (network-namespace pods)'))('probes e2e: rewritten grpc, httpGet and tcpSocket probes under STRICT', () => {
  let cluster: Cluster;
  let pod: Pod;
  let app: PodProcess;
  let statusFile: string;
  let probes: Record<'readinessProbe' | 'livenessProbe' | 'startupProbe', HttpGetProbe>;
  let appProbesEnv: string;
  let startApp: () => Promise<PodProcess>;
  const adminUrl = () => `http://${pod.ip}:${ADMIN_PORT}`;
  const kubeletProbe = async (field: keyof typeof probes) => {
    const res = await fetch(`${adminUrl()}${probes[field].httpGet.path}`);
    return { status: res.status, body: await res.text() };
  };

  beforeAll(async () => {
    cluster = await Cluster.create();
    const svids = await SvidVolumes.create();
    pod = await cluster.addPod('probed', { namespace: 'shop' });
    const injected = await runCommand(nodeBinary, [`${repoRoot}/src/cli.ts`, 'inject', '-'], { input: MANIFEST });
    if (injected.code !== 0) throw new HarnessError('E2E_COMMAND_FAILED', `meshlet inject exited ${injected.code}: ${injected.stderr}`);
    const manifest = parse(injected.stdout) as { spec: { containers: Record<string, unknown>[] } };
    probes = manifest.spec.containers[0] as unknown as typeof probes;
    const spec = readInjectedPod(injected.stdout, { podIp: pod.ip });
    const [init] = spec.initContainers;
    const [proxy] = spec.sidecars;
    const [appContainer] = spec.containers;
    if (!init || !proxy || !appContainer) throw new HarnessError('E2E_UNSUPPORTED_SPEC', injected.stdout);
    appProbesEnv = proxy.env.MESHLET_APP_PROBES ?? '';

    const [svidDir, policyDir, podinfoDir, appDir, federationDir] = await Promise.all(['svid', 'policy', 'podinfo', 'app', 'federation'].map((v) => cluster.volumeDir(`probed-${v}`)));
    await Promise.all([svids.write(svidDir!, 'spiffe://cluster.local/ns/shop/sa/probed'), kubeletWrite(policyDir!, {}), kubeletWrite(podinfoDir!, { labels: 'app="probed"\n' })]);
    const initRun = await pod.execNode('bin/meshlet.js', init.args, { env: init.env, uid: init.uid, gid: init.gid });
    if (initRun.code !== 0) throw new HarnessError('E2E_COMMAND_FAILED', `init container exited ${initRun.code}: ${initRun.stderr}`);
    // files instead of the injected meshlet-ca (no identity service here), so no revocation list from it either.
    const sidecarEnv = { ...mountEnv(proxy, { 'meshlet-policy': policyDir!, 'meshlet-podinfo': podinfoDir!, 'meshlet-federation': federationDir! }), MESHLET_IDENTITY_SOURCE: 'files', MESHLET_SVID_DIR: svidDir!, MESHLET_REVOCATION_LIST: '', MESHLET_LOG_LEVEL: 'warn' };
    const sidecar = pod.spawnNode('bin/meshlet.js', proxy.args, { nodeFlags: proxy.nodeFlags, env: sidecarEnv, uid: proxy.uid, gid: proxy.gid, label: proxy.name });
    await sidecar.waitForLine('meshlet sidecar: ready', { timeoutMs: 30_000 });

    statusFile = `${appDir}/status`;
    startApp = async () => {
      const p = pod.spawnNode('test/e2e/apps/grpc-health-app.ts', [String(GRPC_PORT), String(UNDECLARED_HEALTH_PORT), '--status-file', statusFile], { env: appContainer.env, uid: appContainer.uid ?? APP_UID, label: 'app' });
      await p.waitForPort(GRPC_PORT);
      await p.waitForPort(UNDECLARED_HEALTH_PORT);
      return p;
    };
    app = await startApp();
  }, 120_000);

  afterAll(async () => {
    await cluster?.destroy();
  });

  it('the injector moved all three probes to the admin port, timing kept, originals in MESHLET_APP_PROBES', () => {
    expect(probes.readinessProbe).toEqual({ httpGet: { path: '/app-health/app/readiness', port: ADMIN_PORT, scheme: 'HTTP' }, periodSeconds: 2, timeoutSeconds: 2 });
    expect(probes.livenessProbe).toEqual({ httpGet: { path: '/app-health/app/liveness', port: ADMIN_PORT, scheme: 'HTTP' }, periodSeconds: 10 });
    expect(probes.startupProbe).toEqual({ httpGet: { path: '/app-health/app/startup', port: ADMIN_PORT, scheme: 'HTTP' }, failureThreshold: 30 });
    expect(JSON.parse(appProbesEnv)).toEqual({
      'app/readiness': { kind: 'grpc', port: GRPC_PORT, timeoutSeconds: 2 },
      'app/liveness': { port: UNDECLARED_HEALTH_PORT, path: '/healthz', scheme: 'HTTP' },
      'app/startup': { kind: 'tcp', port: UNDECLARED_HEALTH_PORT },
    });
  });

  it("kubelet's original probes would fail here: STRICT refuses the plaintext gRPC call, the catch-all resets the undeclared port", async () => {
    const grpc = await plaintextGrpcFromHost(pod.ip, GRPC_PORT);
    // Not answered: the STRICT listener wants a TLS ClientHello and closes the connection.
    expect(grpc).toMatch(/^(closed|error)/);
    const http = await plaintextGetFromHost(pod.ip, UNDECLARED_HEALTH_PORT, '/healthz');
    expect(http.reply).not.toMatch(/^HTTP\//);
  });

  it('the rewritten probes, as kubelet sends them from the node, test the app: 200 while it is healthy', async () => {
    expect(await kubeletProbe('readinessProbe')).toEqual({ status: 200, body: 'app probe app/readiness: SERVING\n' });
    expect(await kubeletProbe('livenessProbe')).toEqual({ status: 200, body: 'app probe app/liveness: app answered 200\n' });
    expect(await kubeletProbe('startupProbe')).toEqual({ status: 200, body: `app probe app/startup: connected to port ${UNDECLARED_HEALTH_PORT}\n` });
    expect(app.stdout).toContain('"grpc":"Check","service":""');
    expect(app.stdout).toContain('"http":"/healthz"');
  });

  it('NOT_SERVING fails the grpc probe; a dead app fails all three; a restarted one passes again', async () => {
    await writeFile(statusFile, 'NOT_SERVING\n', { mode: 0o644 });
    expect(await kubeletProbe('readinessProbe')).toEqual({ status: 503, body: 'app probe app/readiness: NOT_SERVING\n' });
    await rm(statusFile);
    expect((await kubeletProbe('readinessProbe')).status).toBe(200);

    await app.stop();
    for (const field of ['readinessProbe', 'livenessProbe', 'startupProbe'] as const) {
      const r = await kubeletProbe(field);
      expect(r.status, `${field}: ${r.body}`).toBe(503);
      expect(r.body).toMatch(/ECONNREFUSED/);
    }

    app = await startApp();
    for (const field of ['readinessProbe', 'livenessProbe', 'startupProbe'] as const) expect((await kubeletProbe(field)).status).toBe(200);
  });
});
