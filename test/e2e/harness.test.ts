// Self-tests of the network-namespace pod harness: what the e2e mesh tests stand on must
// itself be proven on this machine (routing, Service DNAT, names, uids, interception,
// teardown). Needs root + iproute2 + iptables; otherwise skipped with the reason printed.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readInterceptionConfig } from '../../src/control-plane/injector/iptables/env.ts';
import { renderIptablesScript } from '../../src/control-plane/injector/iptables/rules.ts';
import { Cluster, e2eAvailability, e2eSkipped, HarnessError, mountEnv, nodeBinary, readInjectedPod, repoRoot, runCommand, sweepLeftovers, waitFor, type Pod, type Service } from './harness/index.ts';
import { OWNER_DIR, ownerFile, volumesRoot } from '../../src/dev/netns/run-names.ts';
import { kubeletWrite } from '../support/kubelet-volume.ts';

const GREETER = 'test/e2e/harness/tools/tcp-greeter.ts';
const CALL = 'test/e2e/harness/tools/tcp-call.ts';
const PROXY_UID = 2020;
const APP_UID = 1000;

/**
 * Runs tcp-call in `pod` against every target (HOST:PORT) in one Node process and returns
 * each answer (the server's line, or `error <code>`) in order.
 */
async function calls(pod: Pod, targets: string[], options: { uid?: number } = {}): Promise<string[]> {
  const r = await pod.execNode(CALL, targets, options);
  const answers = r.stdout.trim().split('\n').map((l) => l.slice(l.indexOf(' -> ') + 4));
  if (answers.length !== targets.length) throw new Error(`tcp-call from ${pod.name} exited ${r.code}: ${r.stderr.trim()} ${r.stdout}`);
  return answers;
}

async function call(pod: Pod, host: string, port: number, options: { uid?: number } = {}): Promise<string> {
  const [answer] = await calls(pod, [`${host}:${port}`], options);
  return answer ?? '';
}

function callFromHost(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const s = connect({ host, port });
    s.setEncoding('utf8').on('data', (d: string) => (got += d));
    s.on('end', () => resolve(got.trim()));
    s.on('error', reject);
  });
}

async function greeter(pod: Pod, name: string, ports: number[], uid = APP_UID) {
  const p = pod.spawnNode(GREETER, [name, ...ports.map(String)], { uid, label: name });
  for (const port of ports) await p.waitForPort(port);
  return p;
}

function netnsList(): string {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
}

describe.skipIf(e2eSkipped('network-namespace pod harness self-tests'))('network-namespace pod harness', () => {
  let cluster: Cluster;
  let client: Pod;
  let server: Pod;
  let service: Service;

  beforeAll(async () => {
    cluster = await Cluster.create();
    [client, server] = await Promise.all([cluster.addPod('client'), cluster.addPod('server')]);
    service = await cluster.addService({ name: 'greeter', pod: server, ports: [{ port: 80, targetPort: 8080 }] });
    await greeter(server, 'app', [8080]);
  });

  afterAll(async () => {
    await cluster?.destroy();
  });

  it('reports which iptables backend works in a namespace', () => {
    const a = e2eAvailability();
    expect(a.ok).toBe(true);
    if (a.ok) expect(['nf_tables', 'legacy']).toContain(a.iptables.backend);
  });

  it('without root, availability says so (the reason a skipped suite prints)', async () => {
    const script = `import('${repoRoot}/test/e2e/harness/availability.ts').then((m) => m.e2eSkipped('probe suite'))`;
    const r = await server.exec(nodeBinary, ['-e', script], { uid: APP_UID });
    expect(r.stderr).toContain('[e2e] SKIPPED probe suite: network-namespace pods need root');
  });

  it('two pods talk over TCP by pod IP', async () => {
    expect(await call(client, server.ip, 8080)).toBe(`app port=8080 peer=${client.ip} uid=${APP_UID}`);
  });

  it('a pod reaches a Service by VIP and by every cluster-DNS name (DNAT in the node)', async () => {
    const peer = cluster.preservesSourceIp ? client.ip : cluster.gatewayIp;
    const hosts = [service.vip, 'greeter', 'greeter.default', 'greeter.default.svc', service.fqdn];
    expect(await calls(client, hosts.map((h) => `${h}:80`))).toEqual(hosts.map(() => `app port=8080 peer=${peer} uid=${APP_UID}`));
  });

  it('the bare service name resolves only in its own namespace; the FQDN everywhere', async () => {
    const outsider = await cluster.addPod('outsider', { namespace: 'shop' });
    const [bare, fqdn] = await calls(outsider, ['greeter:80', `${service.fqdn}:80`]);
    expect(bare).toMatch(/^error (ENOTFOUND|EAI_AGAIN)$/);
    expect(fqdn).toMatch(/^app port=8080 /);
  });

  it('a pod calling its own Service is answered (hairpin)', async () => {
    expect(await call(server, 'greeter', 80)).toMatch(/^app port=8080 /);
  });

  it('the test process reaches pod IPs and service VIPs through the host link', async () => {
    expect(cluster.hostIp).toBeDefined();
    expect(await callFromHost(server.ip, 8080)).toBe(`app port=8080 peer=${cluster.hostIp} uid=${APP_UID}`);
    expect(await callFromHost(service.vip, 80)).toMatch(/^app port=8080 /);
  });

  it('runs a process under the given uid and gid, supplementary groups cleared', async () => {
    const p = server.spawn('sleep', ['60'], { uid: 1234, gid: 1235 });
    const status = await waitFor('sleep to exec', () => {
      const s = readFileSync(`/proc/${p.pid}/status`, 'utf8');
      return /^Name:\s+sleep$/m.test(s) ? s : undefined;
    });
    expect(status).toMatch(/^Uid:\s+1234\s+1234\s+1234\s+1234$/m);
    expect(status).toMatch(/^Gid:\s+1235\s+1235\s+1235\s+1235$/m);
    expect(status).toMatch(/^Groups:\s*$/m);
    expect(await p.stop()).toEqual({ code: null, signal: 'SIGTERM' });
  });

  it('a volume directory is readable by a process under a non-root uid', async () => {
    const dir = await cluster.volumeDir('policy');
    await kubeletWrite(dir, { 'policy.yaml': 'routes: []\n' });
    const r = await server.exec('cat', [`${dir}/policy.yaml`], { uid: PROXY_UID });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('routes: []\n');
  });

  it('an inbound REDIRECT inside a pod sends port 8080 to the listener on 15100 in that pod', async () => {
    const [sidecar] = await Promise.all([
      greeter(server, 'sidecar', [15100], PROXY_UID),
      server.applyIptables(['*nat', ':PREROUTING ACCEPT [0:0]', '-A PREROUTING -p tcp --dport 8080 -j REDIRECT --to-ports 15100', 'COMMIT', ''].join('\n')),
    ]);
    expect(await server.iptablesSave()).toMatch(/-A PREROUTING -p tcp -m tcp --dport 8080 -j REDIRECT --to-ports 15100/);
    // Directly, and through the Service too (DNAT in the node, then REDIRECT in the pod).
    const [direct, viaService] = await calls(client, [`${server.ip}:8080`, 'greeter:80']);
    expect(direct).toBe(`sidecar port=15100 peer=${client.ip} uid=${PROXY_UID}`);
    expect(viaService).toMatch(/^sidecar port=15100 /);

    await server.applyIptables('*nat\nCOMMIT\n');
    expect(await callFromHost(server.ip, 8080)).toMatch(/^app port=8080 /);
    await sidecar.stop();
  });

  it('an OUTPUT REDIRECT with an --uid-owner exemption: the app is captured, the proxy uid is not', async () => {
    const outbound = await greeter(client, 'outbound', [15001], PROXY_UID);
    await client.applyIptables(
      ['*nat', ':OUTPUT ACCEPT [0:0]', `-A OUTPUT -p tcp -m owner --uid-owner ${PROXY_UID} -j RETURN`, '-A OUTPUT -p tcp ! -d 127.0.0.0/8 -j REDIRECT --to-ports 15001', 'COMMIT', ''].join('\n'),
    );
    const [app] = await calls(client, [`${server.ip}:8080`], { uid: APP_UID });
    const [proxy] = await calls(client, [`${server.ip}:8080`], { uid: PROXY_UID });
    expect(app).toMatch(/^outbound port=15001 /);
    expect(proxy).toMatch(/^app port=8080 /);
    await client.applyIptables('*nat\nCOMMIT\n');
    await outbound.stop();
  });

  it("an injected pod's init container (`meshlet iptables apply`, from `meshlet inject`) intercepts it for real", async () => {
    const manifest = [
      'apiVersion: v1',
      'kind: Pod',
      'metadata: { name: orders, namespace: shop, annotations: { meshlet.io/inject: enabled } }',
      'spec:',
      '  serviceAccountName: orders',
      '  containers: [{ name: app, image: orders:1, ports: [{ containerPort: 8080 }] }]',
      '',
    ].join('\n');
    const injected = await runCommand(nodeBinary, [`${repoRoot}/src/cli.ts`, 'inject', '-'], { input: manifest });
    expect(injected.code, injected.stderr).toBe(0);
    const pod = await cluster.addPod('orders', { namespace: 'shop' });
    const spec = readInjectedPod(injected.stdout, { podIp: pod.ip });
    const [init] = spec.initContainers;
    const [proxy] = spec.sidecars;
    expect(init?.args).toEqual(['iptables', 'apply']);
    expect(proxy?.uid).toBe(PROXY_UID);
    expect(proxy?.env.MESHLET_NAMESPACE).toBe('shop');
    expect(proxy?.env.MESHLET_SERVICE_ACCOUNT).toBe('orders');
    const policyDir = await cluster.volumeDir('orders-policy');
    expect(mountEnv(proxy!, { 'meshlet-policy': policyDir }).MESHLET_POLICY_DIR).toBe(policyDir);

    // The stand-in app and sidecar start while the init container runs: only the calls need the rules.
    const [initRun] = await Promise.all([
      pod.execNode('src/cli.ts', init!.args, { env: init!.env, uid: init!.uid }),
      greeter(pod, 'app', [8080, 9090]),
      greeter(pod, 'sidecar-inbound', [15100], PROXY_UID),
      greeter(pod, 'catch-all', [15006], PROXY_UID),
    ]);
    expect(initRun.code, initRun.stderr).toBe(0);
    const rules = await pod.iptablesSave();
    expect(rules).toMatch(/^:MESHLET_INBOUND - /m);
    expect(rules).toMatch(/^:MESHLET_OUTBOUND - /m);
    expect(rules).toMatch(/^-A MESHLET_INBOUND -p tcp -m tcp --dport 8080 -j REDIRECT --to-ports 15100$/m);
    expect(rules).toMatch(new RegExp(`^-A MESHLET_OUTBOUND -m owner --uid-owner ${PROXY_UID} -j RETURN$`, 'm'));
    // Applying the same rules again (a restarted init container) gives the same table, not a second copy.
    await pod.applyIptables(renderIptablesScript(readInterceptionConfig(init!.env)));
    const strip = (t: string) => t.replace(/^#.*\n/gm, '');
    expect(strip(await pod.iptablesSave())).toBe(strip(rules));

    // 9090 is not declared: it still cannot be reached around the sidecar.
    const [declared, undeclared] = await calls(client, [`${pod.ip}:8080`, `${pod.ip}:9090`]);
    expect(declared).toMatch(/^sidecar-inbound port=15100 /);
    expect(undeclared).toMatch(/^catch-all port=15006 /);
  });

  it('stop() escalates to SIGKILL when SIGTERM is ignored', async () => {
    const stubborn = server.spawnNode('-e', ["process.on('SIGTERM', () => console.log('ignoring SIGTERM')); console.log('ready'); setInterval(() => {}, 1000);"]);
    await stubborn.waitForLine('ready');
    expect(await stubborn.stop({ graceMs: 300 })).toEqual({ code: null, signal: 'SIGKILL' });
  });

  it('waiting on a process that exited fails at once with its output', async () => {
    const dying = server.spawnNode('-e', ["console.error('boom'); process.exit(3)"]);
    const err = await dying.waitForLine('never printed').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HarnessError);
    expect((err as HarnessError).code).toBe('E2E_PROCESS_EXITED');
    expect((err as HarnessError).message).toMatch(/code 3.*boom/s);
    const err2 = await dying.waitForPort(1).catch((e: unknown) => e);
    expect((err2 as HarnessError).code).toBe('E2E_PROCESS_EXITED');
  });

  it('rejects bad and duplicate names with their codes', async () => {
    await expect(cluster.addPod('Bad_Name')).rejects.toMatchObject({ code: 'E2E_BAD_NAME' });
    await expect(cluster.addPod('client')).rejects.toMatchObject({ code: 'E2E_DUPLICATE' });
    await expect(cluster.addService({ name: 'greeter', pod: server, ports: [] })).rejects.toMatchObject({ code: 'E2E_DUPLICATE' });
  });

  it('destroy() leaves no namespace, link, hosts file, owner record or process behind', async () => {
    const other = await Cluster.create();
    const pod = await other.addPod('doomed');
    await other.addService({ name: 'doomed', pod, ports: [{ port: 80, targetPort: 8080 }] });
    const proc = await greeter(pod, 'app', [8080]);
    await other.volumeDir('svid');
    expect(netnsList()).toContain(pod.netns);
    expect(execFileSync('ip', ['link'], { encoding: 'utf8' })).toContain(`mlh${other.runId}`);

    await other.destroy();
    expect(proc.exit).toBeDefined();
    expect(netnsList()).not.toContain(other.runId);
    expect(execFileSync('ip', ['link'], { encoding: 'utf8' })).not.toContain(other.runId);
    expect(execFileSync('ip', ['-4', 'route'], { encoding: 'utf8' })).not.toContain(other.serviceCidr.replace('.0/24', '.'));
    expect(existsSync(`/etc/netns/${pod.netns}`)).toBe(false);
    expect(existsSync(ownerFile(other.runId))).toBe(false);
    expect(existsSync(volumesRoot(other.runId))).toBe(false);
    await expect(other.addPod('late')).rejects.toMatchObject({ code: 'E2E_CLUSTER_DESTROYED' });
    // The cluster of this file is untouched.
    expect(await callFromHost(server.ip, 8080)).toMatch(/^app port=8080 /);
  });

  it('the sweeper removes what an aborted run left, and nothing of a live run', async () => {
    const deadPid = spawnSync('true').pid;
    const run = 'dead00';
    mkdirSync(OWNER_DIR, { recursive: true });
    writeFileSync(ownerFile(run), `${deadPid}\n`);
    execFileSync('ip', ['netns', 'add', `mlp-${run}-leftover`]);
    execFileSync('ip', ['netns', 'add', `mlnode-${run}`]);
    mkdirSync(`/etc/netns/mlp-${run}-leftover`, { recursive: true });
    mkdirSync(volumesRoot(run), { recursive: true });

    const removed = await sweepLeftovers();
    expect(removed).toEqual(expect.arrayContaining([`netns mlp-${run}-leftover`, `netns mlnode-${run}`, volumesRoot(run)]));
    expect(existsSync(`/etc/netns/mlp-${run}-leftover`)).toBe(false);
    expect(netnsList()).not.toContain(run);
    expect(existsSync(ownerFile(run))).toBe(false);
    expect(netnsList()).toContain(client.netns);
    expect(await callFromHost(server.ip, 8080)).toMatch(/^app port=8080 /);
  });
});
