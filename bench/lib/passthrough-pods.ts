import { X509Certificate } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createRootCa, issueSvid } from '../../src/control-plane/identity-service/ca.ts';
import { readInjectionSettings } from '../../src/control-plane/injector/patch/index.ts';
import { injectManifest } from '../../src/control-plane/injector/workloads.ts';
import { FILES_SOURCE_DEFAULTS } from '../../src/data-plane/identity/sources/files.ts';
import { e2eAvailability } from '../../src/dev/netns/availability.ts';
import { Cluster } from '../../src/dev/netns/cluster.ts';
import { mustRun } from '../../src/dev/netns/command-runner.ts';
import { mountEnv, readInjectedPod } from '../../src/dev/netns/injected-pod.ts';
import { kubeletWrite } from '../../src/dev/netns/kubelet-volume.ts';
import type { PodProcess } from '../../src/dev/netns/pod-process.ts';
import { BenchError } from './bench-error.ts';
import type { LatencySummary } from './latency-histogram.ts';
import type { ProxyProcess } from './process-usage.ts';
import type { SidecarRuntime } from './sidecar-runtime.ts';

// The TLS-passthrough hop needs what the loopback topology cannot give: a connection iptables
// REDIRECTed to the sidecar, which reads its original destination (SO_ORIGINAL_DST). So this
// scenario builds a one-node "cluster" of network-namespace pods with the product's own harness
// (src/dev/netns, what `meshlet demo --pods` and the e2e suite run):
//
//   client-meshed  the injector's pod: `meshlet iptables apply` (the injected init container's
//                  args, as root), `meshlet sidecar` under uid 2020 (exempt from the REDIRECT),
//                  the app (bench/lib/tls-client-process.ts) under uid 1000, intercepted
//   client-direct  a plain pod, no rules: the same app under uid 1000
//   outside        not meshed: the TLS echo server (bench/lib/tls-echo-process.ts), uid 1000
//
// Both clients dial the outside pod's IP over the node's bridge: the only difference between the
// two paths is the sidecar's hop (REDIRECT → classify the ClientHello → dial the original
// destination → splice).

const CLIENT = 'bench/lib/tls-client-process.ts';
const ECHO = 'bench/lib/tls-echo-process.ts';
const APP_UID = 1000;
const TRUST_DOMAIN = 'cluster.local';
export const TLS_ECHO_PORT = 8443;
/** The SNI the app sends, as an app calling an external service by name would. */
export const TLS_ECHO_SNI = 'tls-echo.outside.example';

export interface PassthroughResult {
  latency: LatencySummary | null;
  operations: number;
  errors: number;
  firstError: string | null;
  elapsedSeconds: number;
}

/** The app process in one of the two client pods, driven over stdin. */
export interface PassthroughTarget {
  name: 'direct' | 'meshlet';
  /** The sidecar the meshed app's connections cross; none for direct. */
  procs: ProxyProcess[];
  run(mode: 'persistent' | 'new', concurrency: number, seconds: number): Promise<PassthroughResult>;
}

export interface PassthroughPods {
  targets: PassthroughTarget[];
  sidecarPid: number;
  /** Connections the meshed pod's nat OUTPUT chain has REDIRECTed to the sidecar's outbound port so far. */
  redirectedConnections(): Promise<number>;
  note: string;
  stop(): Promise<void>;
}

/** null when pods can run here, else why not (not root, iptables missing, …). */
export function passthroughUnavailable(): string | null {
  const a = e2eAvailability();
  return a.ok ? null : a.reason;
}

let nextCommand = 1;

function driver(proc: PodProcess, serverIp: string): PassthroughTarget['run'] {
  return async (mode, concurrency, seconds) => {
    const id = nextCommand++;
    proc.write(`${JSON.stringify({ id, mode, host: serverIp, port: TLS_ECHO_PORT, servername: TLS_ECHO_SNI, concurrency, seconds })}\n`);
    const line = await proc.waitForLine(new RegExp(`^result ${id} `), { timeoutMs: seconds * 1000 + 60_000 });
    return JSON.parse(line.slice(`result ${id} `.length)) as PassthroughResult;
  };
}

export async function startPassthroughPods(o: { metrics: boolean; runtime: SidecarRuntime; log: (line: string) => void }): Promise<PassthroughPods> {
  // The init container and the sidecar run what the image runs: the artifact (or --sources).
  const entry = o.runtime.entry;
  const cluster = await Cluster.create({ hostAccess: false });
  try {
    const ca = await createRootCa({ trustDomain: TRUST_DOMAIN });
    // The outside server's own certificate (from a CA of its own: not the mesh's business).
    const tlsDir = await cluster.volumeDir('outside-tls');
    const own = await issueSvid(ca, { spiffeId: `spiffe://${TRUST_DOMAIN}/outside/tls-echo` });
    await Promise.all([
      writeFile(join(tlsDir, 'tls.crt'), own.certChainPem),
      writeFile(join(tlsDir, 'tls.key'), own.privateKeyPem, { mode: 0o644 }),
      writeFile(join(tlsDir, 'ca.crt'), own.bundlePem),
    ]);
    const outside = await cluster.addPod('outside', { namespace: 'ext' });
    const echo = outside.spawnNode(ECHO, [String(TLS_ECHO_PORT), join(tlsDir, 'tls.crt'), join(tlsDir, 'tls.key')], { uid: APP_UID, label: 'tls-echo' });
    await echo.waitForLine('listening', { timeoutMs: 30_000 });

    // The meshed client pod, exactly as the webhook injects it and kubelet runs it.
    const pod = await cluster.addPod('client-meshed', { namespace: 'bench' });
    const manifest = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'client-meshed', namespace: 'bench', labels: { app: 'client' } },
      spec: { serviceAccountName: 'client', containers: [{ name: 'app', image: 'client:bench', ports: [{ containerPort: 8080 }] }] },
    };
    const spec = readInjectedPod(injectManifest(manifest, 'bench', readInjectionSettings({ MESHLET_TRUST_DOMAIN: TRUST_DOMAIN })).manifest as object, { podIp: pod.ip });
    const [init] = spec.initContainers;
    const [proxy] = spec.sidecars;
    if (!init || !proxy) throw new BenchError('BENCH_SIDECAR_NOT_STARTED', 'the injected client pod has no init container or no sidecar');
    const [svidDir, policyDir, podinfoDir] = await Promise.all(['svid', 'policy', 'podinfo'].map((v) => cluster.volumeDir(`client-${v}`)));
    const svid = await issueSvid(ca, { spiffeId: `spiffe://${TRUST_DOMAIN}/ns/bench/sa/client` });
    await Promise.all([
      kubeletWrite(svidDir!, { [FILES_SOURCE_DEFAULTS.certFile]: svid.certChainPem, [FILES_SOURCE_DEFAULTS.keyFile]: svid.privateKeyPem, [FILES_SOURCE_DEFAULTS.bundleFile]: svid.bundlePem }),
      kubeletWrite(policyDir!, {}),
      kubeletWrite(podinfoDir!, { labels: 'app="client"\n' }),
    ]);
    const initRun = await pod.execNode(entry, init.args, { env: init.env, uid: init.uid, gid: init.gid, label: init.name });
    if (initRun.code !== 0) throw new BenchError('BENCH_SIDECAR_NOT_STARTED', `init container ${init.name} (${init.args.join(' ')}) exited ${initRun.code}: ${initRun.stderr.trim()}`);
    const env: Record<string, string> = {
      ...mountEnv(proxy, { 'meshlet-policy': policyDir!, 'meshlet-podinfo': podinfoDir! }),
      MESHLET_IDENTITY_SOURCE: 'files',
      MESHLET_SVID_DIR: svidDir!,
      MESHLET_LOG_LEVEL: 'warn',
      ...(o.metrics ? {} : { MESHLET_REQUEST_METRICS: 'false' }),
    };
    // The injected container's own runtime variables when the injector sets them, else the bench's (the same function's).
    for (const [name, value] of Object.entries(o.runtime.env)) env[name] ??= value;
    const sidecar = pod.spawnNode(entry, proxy.args, { nodeFlags: proxy.nodeFlags, env, uid: proxy.uid, gid: proxy.gid, label: proxy.name });
    try {
      await sidecar.waitForLine('meshlet sidecar: ready', { timeoutMs: 60_000 });
    } catch (err) {
      throw new BenchError('BENCH_SIDECAR_NOT_STARTED', `\`meshlet sidecar\` in the meshed client pod did not start (nothing else is measured in its place): ${(err as Error).message}`, { cause: err });
    }
    const direct = await cluster.addPod('client-direct', { namespace: 'bench' });

    const caFile = join(tlsDir, 'ca.crt');
    const targets: PassthroughTarget[] = [];
    for (const [name, p] of [['direct', direct], ['meshlet', pod]] as const) {
      const app = p.spawnNode(CLIENT, [caFile], { uid: APP_UID, label: `tls-client (${name})` });
      await app.waitForLine('client ready', { timeoutMs: 30_000 });
      targets.push({ name, procs: name === 'meshlet' ? [{ role: 'outbound', pid: sidecar.pid }] : [], run: driver(app, outside.ip) });
    }
    const redirectedConnections = async () => {
      const listing = await mustRun('ip', ['netns', 'exec', pod.netns, cluster.iptables.iptables, '-w', '-t', 'nat', '-L', 'MESHLET_OUTBOUND', '-n', '-v', '-x']);
      const line = listing.split('\n').find((l) => /\bREDIRECT\b.*redir ports \d+/.test(l));
      return Number(line?.trim().split(/\s+/)[0] ?? NaN);
    };
    const uid = proxy.uid ?? 'root';
    return {
      targets,
      sidecarPid: sidecar.pid,
      redirectedConnections,
      note: `network-namespace pods (src/dev/netns, iptables ${cluster.iptables.backend}): the meshed client pod as injected (\`${init.args.join(' ')}\` as its init container, \`meshlet sidecar\` under uid ${uid}, files identity, metrics ${o.metrics ? 'on' : 'off'}, node flags "${proxy.nodeFlags.join(' ')}"), the app under uid ${APP_UID}; the TLS echo server (node:tls, TLS 1.3, server certificate ${new X509Certificate(own.certChainPem).subjectAltName ?? ''}) in an unmeshed pod, dialled by pod IP with SNI ${TLS_ECHO_SNI}; direct: the same app in a pod without rules`,
      stop: () => cluster.destroy({ graceMs: 3_000 }),
    };
  } catch (err) {
    await cluster.destroy({ graceMs: 1_000 });
    throw err;
  }
}
