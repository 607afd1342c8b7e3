import { join } from 'node:path';
import { injectManifest } from '../../control-plane/injector/workloads.ts';
import { readInjectionSettings } from '../../control-plane/injector/patch/index.ts';
import { createRootCa, issueSvid, type CertificateAuthority } from '../../control-plane/identity-service/ca.ts';
import { FILES_SOURCE_DEFAULTS } from '../../data-plane/identity/sources/files.ts';
import { Cluster } from '../netns/cluster.ts';
import { HarnessError } from '../netns/errors.ts';
import { mountEnv, readInjectedPod } from '../netns/injected-pod.ts';
import { kubeletWrite } from '../netns/kubelet-volume.ts';
import type { Pod } from '../netns/pod.ts';
import type { PodProcess } from '../netns/pod-process.ts';
import { demoResult } from './call-result.ts';
import { policyEventOf, type PolicyEvent } from './demo-output.ts';
import { DEMO_APP_PORT, DEMO_CALLS, DEMO_SERVICES, DEMO_TRUST_DOMAIN, demoPolicy, type DemoCall, type DemoResult } from './demo-mesh.ts';

/** One demo service as a running pod. */
export interface PodsDemoService {
  name: string;
  namespace: string;
  spiffeId: string;
  pod: Pod;
  sidecar: PodProcess;
  app: PodProcess;
  adminUrl: string;
}

export type { PolicyEvent };

const MESHLET = 'bin/meshlet.js';
const APP = 'src/dev/demo/pods-demo-app.ts';
const APP_UID = 1000;
const SPECS = DEMO_SERVICES;

/**
 * `meshlet demo --pods`: the demo mesh of demo-mesh.ts, but each service is a
 * network-namespace pod (src/dev/netns) run the way kubelet runs what `meshlet inject` made of it:
 * the init container's iptables rules, the native sidecar (`meshlet sidecar`, uid 2020), then
 * the app (uid 1000), which calls the other services by their cluster names with no proxy
 * settings. Service VIPs are DNATed in the node, as kube-proxy does.
 *
 * Identity: no identity service runs (it needs a TokenReview API), so a CA made at start
 * writes each pod's SVID into its volume for the `files` source, as csi-driver-spiffe would.
 * The policy is ONE ConfigMap-style volume shared by every sidecar, for the user to edit.
 */
export class PodsDemo {
  readonly cluster: Cluster;
  readonly services = new Map<string, PodsDemoService>();
  policyFile = '';
  #nextCallId = 1;
  readonly #seenPolicyLines = new Set<string>();

  private constructor(cluster: Cluster) {
    this.cluster = cluster;
  }

  /**
   * Builds the cluster, its three pods and Services; on any failure, or when `signal` aborts
   * (Ctrl-C during start-up), tears down what it made and rejects.
   */
  static async start(options: { signal?: AbortSignal } = {}): Promise<PodsDemo> {
    options.signal?.throwIfAborted();
    const demo = new PodsDemo(await Cluster.create({ hostAccess: true }));
    try {
      await demo.#build(options.signal);
      return demo;
    } catch (err) {
      await demo.stop();
      throw err;
    }
  }

  async #build(signal: AbortSignal | undefined): Promise<void> {
    const ca = await createRootCa({ trustDomain: DEMO_TRUST_DOMAIN });
    const policyDir = await this.cluster.volumeDir('policy');
    await kubeletWrite(policyDir, { 'policy.yaml': demoPolicy() });
    this.policyFile = join(policyDir, 'policy.yaml');
    // Pods one at a time: each waits for its sidecar, and a 2-core machine starts Node
    // processes faster in sequence than all at once.
    for (const spec of SPECS) {
      signal?.throwIfAborted();
      await this.#startPod(ca, policyDir, spec);
    }
    this.policyEvents(); // the load at start is not news
  }

  async #startPod(ca: CertificateAuthority, policyDir: string, s: (typeof SPECS)[number]): Promise<void> {
    const pod = await this.cluster.addPod(s.name, { namespace: s.namespace });
    await this.cluster.addService({ name: s.name, pod, ports: [{ port: DEMO_APP_PORT, targetPort: DEMO_APP_PORT }] });
    const manifest = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: s.name, namespace: s.namespace, labels: { app: s.name } },
      spec: { serviceAccountName: s.serviceAccount, containers: [{ name: 'app', image: `${s.name}:demo`, ports: [{ containerPort: DEMO_APP_PORT }] }] },
    };
    // The same injection the webhook does, with the demo's trust domain as the injector's setting.
    const injected = injectManifest(manifest, s.namespace, readInjectionSettings({ MESHLET_TRUST_DOMAIN: DEMO_TRUST_DOMAIN })).manifest;
    const spec = readInjectedPod(injected as object, { podIp: pod.ip });
    const [init] = spec.initContainers;
    const [proxy] = spec.sidecars;
    const [appContainer] = spec.containers;
    if (!init || !proxy || !appContainer) throw new HarnessError('E2E_UNSUPPORTED_SPEC', `the injected ${s.name} pod lacks an init container, a sidecar or the app`);

    const spiffeId = `spiffe://${DEMO_TRUST_DOMAIN}/ns/${s.namespace}/sa/${s.serviceAccount}`;
    const [svidDir, podinfoDir, federationDir] = await Promise.all([this.cluster.volumeDir(`${s.name}-svid`), this.cluster.volumeDir(`${s.name}-podinfo`), this.cluster.volumeDir(`${s.name}-federation`)]);
    const svid = await issueSvid(ca, { spiffeId });
    await Promise.all([
      kubeletWrite(svidDir, { [FILES_SOURCE_DEFAULTS.certFile]: svid.certChainPem, [FILES_SOURCE_DEFAULTS.keyFile]: svid.privateKeyPem, [FILES_SOURCE_DEFAULTS.bundleFile]: svid.bundlePem }),
      kubeletWrite(podinfoDir, { labels: `app="${s.name}"\n` }),
    ]);

    const initRun = await pod.execNode(MESHLET, init.args, { env: init.env, uid: init.uid, gid: init.gid, label: init.name });
    if (initRun.code !== 0) throw new HarnessError('E2E_COMMAND_FAILED', `${s.name}: init container ${init.name} exited ${initRun.code}: ${initRun.stderr.trim()}`);
    // files instead of the injected meshlet-ca (the demo runs no identity service), so no revocation list from it either.
    const env: Record<string, string> = { ...mountEnv(proxy, { 'meshlet-policy': policyDir, 'meshlet-podinfo': podinfoDir, 'meshlet-federation': federationDir }), MESHLET_IDENTITY_SOURCE: 'files', MESHLET_SVID_DIR: svidDir, MESHLET_REVOCATION_LIST: '', MESHLET_LOG_LEVEL: 'info' };
    const sidecar = pod.spawnNode(MESHLET, proxy.args, { nodeFlags: proxy.nodeFlags, env, uid: proxy.uid, gid: proxy.gid, label: proxy.name });
    // What the native sidecar's startupProbe waits for before kubelet starts the app.
    await sidecar.waitForLine('meshlet sidecar: ready', { timeoutMs: 60_000 });
    const app = pod.spawnNode(APP, [s.name, String(DEMO_APP_PORT)], { env: appContainer.env, uid: appContainer.uid ?? APP_UID, label: 'app' });
    await app.waitForPort(DEMO_APP_PORT, { timeoutMs: 60_000 });
    this.services.set(s.name, { name: s.name, namespace: s.namespace, spiffeId, pod, sidecar, app, adminUrl: `http://${pod.ip}:${env.MESHLET_ADMIN_PORT ?? '15020'}` });
  }

  /** One call made by `from`'s app inside its pod, to `to` by its cluster name: intercepted, never proxied by name. */
  async call(c: DemoCall): Promise<DemoResult> {
    const from = this.services.get(c.from);
    const to = this.services.get(c.to);
    if (!from || !to) throw new HarnessError('E2E_BAD_NAME', `no demo service ${JSON.stringify(from ? c.to : c.from)}`);
    const id = this.#nextCallId++;
    from.app.write(`call ${id} ${c.method} http://${c.to}.${to.namespace}.svc.cluster.local:${DEMO_APP_PORT}${c.path}\n`);
    const line = await from.app.waitForLine(new RegExp(`^result ${id} `), { timeoutMs: 30_000 });
    const { status, body } = JSON.parse(line.slice(`result ${id} `.length)) as { status: number; body: string };
    return demoResult(c, status, body);
  }

  async round(): Promise<DemoResult[]> {
    const out: DemoResult[] = [];
    for (const c of DEMO_CALLS) out.push(await this.call(c));
    return out;
  }

  /**
   * Policy reloads and refused edits logged by the orders sidecar since the last call (one
   * sidecar, so each shared edit is reported once; the load at start is not news).
   */
  policyEvents(): PolicyEvent[] {
    const orders = this.services.get('orders');
    const events: PolicyEvent[] = [];
    if (!orders) return events;
    for (const raw of `${orders.sidecar.stdout}\n${orders.sidecar.stderr}`.split('\n')) {
      if (!raw.includes('"event":"policy_') || this.#seenPolicyLines.has(raw)) continue;
      this.#seenPolicyLines.add(raw);
      const event = policyEventOf(raw);
      if (event) events.push(event);
    }
    return events;
  }

  /** Stops every process in the pods and deletes the pods, the node and the volumes. */
  async stop(): Promise<void> {
    await this.cluster.destroy({ graceMs: 3_000 });
  }
}
