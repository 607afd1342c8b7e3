// A throwaway Kubernetes control plane on loopback, for the tests in test/cluster:
// etcd, kube-apiserver (a PKI made for this run, ServiceAccount issuer and signing keys,
// Node,RBAC authorization, the admission webhook plugins) and kube-controller-manager (so
// Deployments, StatefulSets, Jobs and CronJobs make Pods). No kubelet, no scheduler: Pods stay
// Pending, which is all the API-side tests need.
//
//   node test/cluster/control-plane.ts up     start one, print KUBECONFIG, leave it running
//   node test/cluster/control-plane.ts down   stop the one `up` started, remove its files
//
// Every process runs in its own process group; stop() sends SIGTERM to each group, SIGKILL
// after 10 s, and removes the temp dir. A process that exits without stop() (a crashed test
// worker) leaves groups that the suite's global teardown finds by its run id and kills.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePorts } from '../../src/dev/demo/free-ports.ts';
import { clusterCacheDir, findBinaries, type ClusterBinaries } from './binaries.ts';
import { createClusterCa, serviceAccountKeyPair } from './pki.ts';

/** The issuer meshlet identity expects by default (MESHLET_JWKS_ISSUER), as on most clusters. */
export const SERVICE_ACCOUNT_ISSUER = 'https://kubernetes.default.svc.cluster.local';
export const SERVICE_CLUSTER_IP_RANGE = '10.96.0.0/16';
const TEMP_PREFIX = 'meshlet-cluster-';
const STOP_GRACE_MS = 10_000;

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ApiResponse {
  status: number;
  body: unknown;
}

export interface ControlPlane {
  /** Temp dir: PKI, kubeconfigs, etcd data, logs. Removed by stop(). */
  dir: string;
  server: string;
  kubeconfig: string;
  /** PEM of the CA that signed the API server's serving certificate (and the client certificates). */
  caPem: string;
  caFile: string;
  issuer: string;
  jwksUrl: string;
  binaries: ClusterBinaries;
  /** Milliseconds from spawning etcd to /readyz 200, and to the controller-manager working. */
  timings: { apiserverReadyMs: number; readyMs: number };
  /** Runs the built kubectl against this cluster; never throws on a non-zero exit. */
  kubectl(args: readonly string[], opts?: { input?: string }): Promise<CommandResult>;
  /** Like kubectl(), but a non-zero exit throws with kubectl's stderr. */
  kubectlOk(args: readonly string[], opts?: { input?: string }): Promise<string>;
  /** An API request as the admin user (client certificate, group system:masters). */
  api(method: string, path: string, body?: unknown): Promise<ApiResponse>;
  /** The last lines of a component's log (etcd, kube-apiserver, kube-controller-manager). */
  logTail(component: string, lines?: number): string;
  stop(): Promise<void>;
}

interface State {
  runId: string;
  dir: string;
  groups: { name: string; pid: number }[];
}

function kubeconfigYaml(server: string, caPem: string, user: string, cert: string, key: string): string {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: meshlet-test',
    '  cluster:',
    `    server: ${server}`,
    `    certificate-authority-data: ${b64(caPem)}`,
    'users:',
    `- name: ${user}`,
    '  user:',
    `    client-certificate-data: ${b64(cert)}`,
    `    client-key-data: ${b64(key)}`,
    'contexts:',
    '- name: meshlet-test',
    '  context:',
    '    cluster: meshlet-test',
    `    user: ${user}`,
    'current-context: meshlet-test',
    '',
  ].join('\n');
}

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM to each process group (last started first), SIGKILL to what is left after the grace period. */
export async function stopGroups(groups: readonly { pid: number }[]): Promise<void> {
  for (const { pid } of [...groups].reverse()) {
    try {
      process.kill(-pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
    const deadline = Date.now() + STOP_GRACE_MS;
    while (groupAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startControlPlane(opts: { keepRunning?: boolean; runId?: string } = {}): Promise<ControlPlane> {
  const { paths: binaries, complete } = findBinaries();
  if (!complete) throw new Error(`the Kubernetes binaries are not built; run ${fileURLToPath(new URL('./build/kubernetes.sh', import.meta.url))}`);
  const t0 = Date.now();
  const dir = await mkdtemp(join(tmpdir(), TEMP_PREFIX));
  const runId = opts.runId ?? 'standalone';
  const state: State = { runId, dir, groups: [] };
  const children: ChildProcess[] = [];
  const saveState = () => writeFile(join(dir, 'state.json'), JSON.stringify(state));

  // Processes of a test worker that dies before afterAll: kill them on the way out at least.
  const killOnExit = () => {
    for (const { pid } of state.groups) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  if (!opts.keepRunning) process.once('exit', killOnExit);

  // Clean environment: no proxy variables (the API server would send webhook calls through them).
  const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: dir };
  const run = (name: keyof ClusterBinaries, args: string[]): ChildProcess => {
    const log = openSync(join(dir, `${name}.log`), 'a');
    const child = spawn(binaries[name], args, { detached: true, stdio: ['ignore', log, log], env });
    closeSync(log);
    if (opts.keepRunning) child.unref();
    children.push(child);
    state.groups.push({ name, pid: child.pid! });
    return child;
  };
  const exited = (child: ChildProcess) => child.exitCode !== null || child.signalCode !== null;
  const logTail = (component: string, lines = 40): string => {
    try {
      return readFileSync(join(dir, `${component}.log`), 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  };

  const stop = async () => {
    process.off('exit', killOnExit);
    await stopGroups(state.groups);
    await rm(dir, { recursive: true, force: true });
  };

  try {
    // PKI for this run.
    const ca = await createClusterCa('meshlet-test-cluster-ca');
    const [etcdClient, etcdPeer, apiPort] = (await freePorts(3)) as [number, number, number];
    const server = `https://127.0.0.1:${apiPort}`;
    const serving = await ca.issue({
      cn: 'kube-apiserver',
      usage: 'server',
      dns: ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local'],
      ips: ['127.0.0.1', '10.96.0.1'],
    });
    const admin = await ca.issue({ cn: 'meshlet-test-admin', org: 'system:masters', usage: 'client' });
    const kcm = await ca.issue({ cn: 'system:kube-controller-manager', usage: 'client' });
    const sa = serviceAccountKeyPair();
    const pki = join(dir, 'pki');
    await mkdir(pki);
    const file = async (name: string, content: string) => {
      const p = join(pki, name);
      await writeFile(p, content, { mode: 0o600 });
      return p;
    };
    const caFile = await file('ca.crt', ca.cert);
    const servingCert = await file('apiserver.crt', serving.cert);
    const servingKey = await file('apiserver.key', serving.key);
    const saKey = await file('sa.key', sa.privateKey);
    const saPub = await file('sa.pub', sa.publicKey);
    const kubeconfig = join(dir, 'admin.kubeconfig');
    await writeFile(kubeconfig, kubeconfigYaml(server, ca.cert, 'meshlet-test-admin', admin.cert, admin.key), { mode: 0o600 });
    const kcmKubeconfig = join(dir, 'kube-controller-manager.kubeconfig');
    await writeFile(kcmKubeconfig, kubeconfigYaml(server, ca.cert, 'system:kube-controller-manager', kcm.cert, kcm.key), { mode: 0o600 });

    const api = (method: string, path: string, body?: unknown): Promise<ApiResponse> =>
      new Promise((resolve, reject) => {
        const payload = body === undefined ? undefined : JSON.stringify(body);
        const req = request(`${server}${path}`, {
          method,
          ca: ca.cert,
          cert: admin.cert,
          key: admin.key,
          agent: false,
          timeout: 30_000,
          headers: payload === undefined ? { accept: 'application/json' } : { accept: 'application/json', 'content-type': 'application/json' },
        }, (res) => {
          let text = '';
          res.setEncoding('utf8').on('data', (d: string) => (text += d));
          res.on('end', () => {
            let parsed: unknown = text;
            try {
              parsed = JSON.parse(text);
            } catch {
              /* plain text (/readyz) */
            }
            resolve({ status: res.statusCode ?? 0, body: parsed });
          });
        });
        req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timeout`)));
        req.on('error', reject);
        req.end(payload);
      });

    // etcd: one member, loopback only, no fsync (the data dir is thrown away anyway).
    const etcd = run('etcd', [
      '--name=default',
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=default=http://127.0.0.1:${etcdPeer}`,
      '--unsafe-no-fsync',
      '--log-level=warn',
    ]);
    await saveState();
    for (let deadline = Date.now() + 60_000; ; ) {
      if (exited(etcd)) throw new Error(`etcd exited (${etcd.exitCode ?? etcd.signalCode}):\n${logTail('etcd')}`);
      const ok = await fetch(`http://127.0.0.1:${etcdClient}/health`).then((r) => r.ok, () => false);
      if (ok) break;
      if (Date.now() > deadline) throw new Error(`etcd not healthy after 60 s:\n${logTail('etcd')}`);
      await sleep(200);
    }

    const apiserver = run('kube-apiserver', [
      `--etcd-servers=http://127.0.0.1:${etcdClient}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${apiPort}`,
      `--cert-dir=${join(dir, 'apiserver-certs')}`,
      `--tls-cert-file=${servingCert}`,
      `--tls-private-key-file=${servingKey}`,
      `--client-ca-file=${caFile}`,
      `--service-account-issuer=${SERVICE_ACCOUNT_ISSUER}`,
      `--service-account-key-file=${saPub}`,
      `--service-account-signing-key-file=${saKey}`,
      `--service-account-jwks-uri=${server}/openid/v1/jwks`,
      '--authorization-mode=Node,RBAC',
      '--enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,PodSecurity,DefaultStorageClass,ResourceQuota,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ValidatingAdmissionPolicy',
      `--service-cluster-ip-range=${SERVICE_CLUSTER_IP_RANGE}`,
      '--allow-privileged=true',
      // No kubelet will ever serve the kubernetes Service's endpoints; 127.0.0.1 is not a valid endpoint IP anyway.
      '--endpoint-reconciler-type=none',
      '--profiling=false',
    ]);
    await saveState();
    for (let deadline = Date.now() + 180_000; ; ) {
      if (exited(apiserver)) throw new Error(`kube-apiserver exited (${apiserver.exitCode ?? apiserver.signalCode}):\n${logTail('kube-apiserver')}`);
      const r = await api('GET', '/readyz').catch(() => undefined);
      if (r?.status === 200) break;
      if (Date.now() > deadline) throw new Error(`kube-apiserver /readyz not 200 after 180 s (${r?.status} ${String(r?.body).slice(0, 400)}):\n${logTail('kube-apiserver')}`);
      await sleep(250);
    }
    const apiserverReadyMs = Date.now() - t0;

    const controllerManager = run('kube-controller-manager', [
      `--kubeconfig=${kcmKubeconfig}`,
      `--authentication-kubeconfig=${kcmKubeconfig}`,
      `--authorization-kubeconfig=${kcmKubeconfig}`,
      '--bind-address=127.0.0.1',
      '--secure-port=0',
      '--leader-elect=false',
      '--use-service-account-credentials=true',
      `--service-account-private-key-file=${saKey}`,
      `--root-ca-file=${caFile}`,
      // Every default controller: deployment, replicaset, statefulset, job, cronjob,
      // serviceaccount, serviceaccount-token, namespace, garbage collector, …
      '--controllers=*',
    ]);
    await saveState();
    // Working = the serviceaccount controller has made namespace default's ServiceAccount.
    for (let deadline = Date.now() + 180_000; ; ) {
      if (exited(controllerManager)) throw new Error(`kube-controller-manager exited (${controllerManager.exitCode ?? controllerManager.signalCode}):\n${logTail('kube-controller-manager')}`);
      const r = await api('GET', '/api/v1/namespaces/default/serviceaccounts/default').catch(() => undefined);
      if (r?.status === 200) break;
      if (Date.now() > deadline) throw new Error(`kube-controller-manager did not create ServiceAccount default/default within 180 s:\n${logTail('kube-controller-manager')}`);
      await sleep(250);
    }
    const readyMs = Date.now() - t0;

    const kubectl = (args: readonly string[], o: { input?: string } = {}): Promise<CommandResult> =>
      new Promise((resolve) => {
        const child = execFile(binaries.kubectl, [`--kubeconfig=${kubeconfig}`, ...args], { env: { ...env, KUBECONFIG: kubeconfig }, maxBuffer: 64 * 1024 * 1024, timeout: 120_000 }, (err, stdout, stderr) => {
          const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
          resolve({ code, stdout, stderr });
        });
        child.stdin!.end(o.input ?? '');
      });
    const kubectlOk = async (args: readonly string[], o: { input?: string } = {}): Promise<string> => {
      const r = await kubectl(args, o);
      if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} exited ${r.code}:\n${r.stderr}${r.stdout}`);
      return r.stdout;
    };

    return {
      dir,
      server,
      kubeconfig,
      caPem: ca.cert,
      caFile,
      issuer: SERVICE_ACCOUNT_ISSUER,
      jwksUrl: `${server}/openid/v1/jwks`,
      binaries,
      timings: { apiserverReadyMs, readyMs },
      kubectl,
      kubectlOk,
      api,
      logTail,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Kills the control planes a test run (by run id) left behind and removes their temp dirs. */
export async function reapRun(runId: string): Promise<number> {
  let reaped = 0;
  for (const entry of readdirSync(tmpdir())) {
    if (!entry.startsWith(TEMP_PREFIX)) continue;
    const dir = join(tmpdir(), entry);
    const stateFile = join(dir, 'state.json');
    if (!existsSync(stateFile)) continue;
    let state: State;
    try {
      state = JSON.parse(await readFile(stateFile, 'utf8')) as State;
    } catch {
      continue;
    }
    if (state.runId !== runId) continue;
    await stopGroups(state.groups.filter((g) => groupAlive(g.pid)));
    await rm(dir, { recursive: true, force: true });
    reaped++;
  }
  return reaped;
}

// --- `node test/cluster/control-plane.ts up|down` ---

const STATE_FILE = join(clusterCacheDir(), 'run', 'control-plane.json');

async function cli(cmd: string | undefined): Promise<number> {
  if (cmd === 'up') {
    if (existsSync(STATE_FILE)) {
      process.stderr.write(`a control plane is already up (${STATE_FILE}); run \`node test/cluster/control-plane.ts down\` first\n`);
      return 1;
    }
    const cp = await startControlPlane({ keepRunning: true });
    const state = JSON.parse(await readFile(join(cp.dir, 'state.json'), 'utf8')) as State;
    await mkdir(join(clusterCacheDir(), 'run'), { recursive: true });
    await writeFile(STATE_FILE, JSON.stringify({ ...state, kubeconfig: cp.kubeconfig, server: cp.server }));
    process.stdout.write(
      `control plane up in ${(cp.timings.readyMs / 1000).toFixed(1)} s (kube-apiserver ready after ${(cp.timings.apiserverReadyMs / 1000).toFixed(1)} s)\n` +
      `  server      ${cp.server}\n  kubectl     ${cp.binaries.kubectl}\n  logs        ${cp.dir}/*.log\n` +
      `export KUBECONFIG=${cp.kubeconfig}\n`,
    );
    return 0;
  }
  if (cmd === 'down') {
    if (!existsSync(STATE_FILE)) {
      process.stderr.write('no control plane is up\n');
      return 0;
    }
    const state = JSON.parse(await readFile(STATE_FILE, 'utf8')) as State;
    await stopGroups(state.groups);
    await rm(state.dir, { recursive: true, force: true });
    await rm(STATE_FILE, { force: true });
    process.stdout.write(`control plane stopped; removed ${state.dir}\n`);
    return 0;
  }
  process.stderr.write('usage: node test/cluster/control-plane.ts up|down\n');
  return 2;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  cli(process.argv[2]).then(
    (code) => process.exit(code),
    (err: unknown) => {
      // One line for the user; the stack only when asked for (as the meshlet CLI does).
      process.stderr.write(`control-plane: ${(err as Error)?.message ?? String(err)}\n${process.env['MESHLET_DEBUG'] ? `${(err as Error)?.stack ?? ''}\n` : ''}`);
      process.exit(1);
    },
  );
}
