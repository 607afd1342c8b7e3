import { writeFile } from 'node:fs/promises';
import { stringify } from 'yaml';
import { kubeletWrite } from '../../support/kubelet-volume.ts';
import { HarnessError, mountEnv, nodeBinary, readInjectedPod, repoRoot, runCommand, type Cluster, type InjectedPodSpec, type Pod, type PodProcess } from '../harness/index.ts';
import type { IssuedSvid, SvidVolumes } from './svid-volume.ts';

export const PROXY_UID = 2020;
export const APP_UID = 1000;
export const ADMIN_PORT = 15020;
const ECHO_APP = 'test/e2e/apps/echo-app.ts';
const MESHLET = 'bin/meshlet.js';

export interface MeshedPodSpec {
  name: string;
  namespace: string;
  serviceAccount: string;
  labels?: Record<string, string>;
  /** Pod annotations (meshlet.io/permissive-ports, …), read by `meshlet inject` as the webhook would. */
  annotations?: Record<string, string>;
  /** containerPorts the pod spec declares (the injector fronts exactly these); a name `grpc…` makes it a gRPC port. */
  declaredPorts: (number | { containerPort: number; name: string })[];
  /** HTTP ports the echo app listens on; may include ports the spec does not declare. Default: declaredPorts but grpcPort. None: no app. */
  appPorts?: number[];
  /** The echo app also serves gRPC (shop.v1.Orders) on this port. */
  grpcPort?: number;
  /** An httpGet readinessProbe on the app's /healthz at this port (rewritten by the injector). */
  readinessProbePort?: number;
  /** Policy YAML for the pod's policy ConfigMap (absent: an empty ConfigMap, the mesh default applies). */
  policy?: string;
  /** Sidecar env on top of the injected one (and of the identity overrides). */
  sidecarEnv?: Record<string, string>;
}

/** A pod built from `meshlet inject` output and run the way kubelet would run it. */
export interface MeshedPod {
  pod: Pod;
  spec: InjectedPodSpec;
  spiffeId: string;
  sidecar: PodProcess;
  /** The echo app, when the pod has app ports. */
  app: PodProcess | undefined;
  /** The environment the sidecar got (injected, volumes moved, identity overrides). */
  sidecarEnv: Record<string, string>;
  svidDir: string;
  policyDir: string;
  /** Created by the test to turn the app's readiness on (see echo-app.ts --ready-file). */
  readyFile: string;
  svid: IssuedSvid;
  adminUrl: string;
}

/** The pod manifest the test "applies": a plain Pod, as a user writes it, before injection. */
export function podManifest(spec: MeshedPodSpec): string {
  const container: Record<string, unknown> = { name: 'app', image: `${spec.name}:1`, ports: spec.declaredPorts.map((p) => (typeof p === 'number' ? { containerPort: p } : p)) };
  if (spec.readinessProbePort !== undefined) container.readinessProbe = { httpGet: { path: '/healthz', port: spec.readinessProbePort }, periodSeconds: 2 };
  return stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: spec.name, namespace: spec.namespace, labels: spec.labels ?? { app: spec.name }, ...(spec.annotations ? { annotations: spec.annotations } : {}) },
    spec: { serviceAccountName: spec.serviceAccount, containers: [container] },
  });
}

/**
 * Creates the pod's network namespace, injects the manifest with `meshlet inject`, then
 * runs what kubelet would: the init container (`meshlet iptables apply`, as root), the
 * native sidecar (`meshlet sidecar` under its injected uid 2020) until it is ready, then the
 * app under uid 1000.
 *
 * Identity: the injected env names the meshlet-ca source; no identity service runs in the
 * e2e suite, so MESHLET_IDENTITY_SOURCE=files and MESHLET_SVID_DIR=<svid volume> replace it,
 * and the SVID is written into that volume from the test's CA (and MESHLET_REVOCATION_LIST, which
 * names that identity service, is emptied). Everything else is the
 * injected environment with each volume's mountPath moved to the test's directory.
 */
export async function startMeshedPod(cluster: Cluster, svids: SvidVolumes, spec: MeshedPodSpec): Promise<MeshedPod> {
  const pod = await cluster.addPod(spec.name, { namespace: spec.namespace });
  const injected = await runCommand(nodeBinary, [`${repoRoot}/src/cli.ts`, 'inject', '-'], { input: podManifest(spec) });
  if (injected.code !== 0) throw new HarnessError('E2E_COMMAND_FAILED', `meshlet inject exited ${injected.code}: ${injected.stderr}`);
  const podSpec = readInjectedPod(injected.stdout, { podIp: pod.ip });
  const [init] = podSpec.initContainers;
  const [proxy] = podSpec.sidecars;
  const [appContainer] = podSpec.containers;
  if (!init || !proxy || !appContainer) throw new HarnessError('E2E_UNSUPPORTED_SPEC', `the injected pod lacks an init container, a sidecar or the app: ${injected.stdout}`);

  const spiffeId = `spiffe://cluster.local/ns/${spec.namespace}/sa/${spec.serviceAccount}`;
  const [svidDir, policyDir, podinfoDir, appDir, federationDir] = await Promise.all(['svid', 'policy', 'podinfo', 'app', 'federation'].map((v) => cluster.volumeDir(`${spec.name}-${v}`)));
  const labels = Object.entries(podSpec.labels).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join('\n');
  const [svid] = await Promise.all([
    svids.write(svidDir!, spiffeId),
    kubeletWrite(policyDir!, spec.policy === undefined ? {} : { 'policy.yaml': spec.policy }),
    kubeletWrite(podinfoDir!, { labels: `${labels}\n` }),
  ]);

  const initRun = await pod.execNode(MESHLET, init.args, { env: init.env, uid: init.uid, gid: init.gid });
  if (initRun.code !== 0) throw new HarnessError('E2E_COMMAND_FAILED', `${spec.name}: init container ${init.name} exited ${initRun.code}: ${initRun.stderr}`);

  const sidecarEnv = {
    ...mountEnv(proxy, { 'meshlet-policy': policyDir!, 'meshlet-podinfo': podinfoDir!, 'meshlet-federation': federationDir! }),
    MESHLET_IDENTITY_SOURCE: 'files',
    MESHLET_SVID_DIR: svidDir!,
    // The injected meshlet-ca pod learns revocations from the identity service, which does not run here.
    MESHLET_REVOCATION_LIST: '',
    MESHLET_LOG_LEVEL: 'warn',
    ...spec.sidecarEnv,
  };
  const sidecar = pod.spawnNode(MESHLET, proxy.args, { nodeFlags: proxy.nodeFlags, env: sidecarEnv, uid: proxy.uid, gid: proxy.gid, label: `${proxy.name}` });
  // The native sidecar's startupProbe holds the app until /ready; the ready line is printed then.
  await sidecar.waitForLine('meshlet sidecar: ready', { timeoutMs: 30_000 });

  const readyFile = `${appDir}/ready`;
  let app: PodProcess | undefined;
  const appPorts = spec.appPorts ?? spec.declaredPorts.map((p) => (typeof p === 'number' ? p : p.containerPort)).filter((p) => p !== spec.grpcPort);
  if (appPorts.length > 0) {
    const grpc = spec.grpcPort === undefined ? [] : ['--grpc', String(spec.grpcPort)];
    app = pod.spawnNode(ECHO_APP, [spec.name, appPorts.join(','), '--ready-file', readyFile, ...grpc], { env: appContainer.env, uid: appContainer.uid ?? APP_UID, label: 'app' });
    for (const p of [...appPorts, ...(spec.grpcPort === undefined ? [] : [spec.grpcPort])]) await app.waitForPort(p);
  }
  return { pod, spec: podSpec, spiffeId, sidecar, app, sidecarEnv, svidDir: svidDir!, policyDir: policyDir!, readyFile, svid, adminUrl: `http://${pod.ip}:${ADMIN_PORT}` };
}

/** Turns the echo app's /healthz to 200 (it answers 503 until then). */
export async function markAppReady(p: MeshedPod): Promise<void> {
  await writeFile(p.readyFile, 'ready\n', { mode: 0o644 });
}

/** The requests the echo app of `p` has seen so far (its `seen {...}` stdout lines). */
export function seenByApp(p: MeshedPod): { app: string; port: number; method: string; path: string; peer: string | null; uid: number }[] {
  return (p.app?.stdout ?? '')
    .split('\n')
    .filter((l) => l.startsWith('seen '))
    .map((l) => JSON.parse(l.slice(5)) as { app: string; port: number; method: string; path: string; peer: string | null; uid: number });
}
