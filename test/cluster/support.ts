// Shared by the Kubernetes suites: one control plane per test file, meshlet's own processes
// (injector, identity, sidecar) started from src/cli.ts on the host, deploy/'s webhook
// configurations pointed at them, and polling helpers.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, inject } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { startControlPlane, type ControlPlane } from './control-plane.ts';
import { createClusterCa } from './pki.ts';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));
export const CLI = join(REPO, 'src', 'cli.ts');
export const DEPLOY = join(REPO, 'deploy');

export type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; [k: string]: unknown }; [k: string]: unknown };

/** Why this file's suites are skipped (printed, never silent), or '' when they run. */
export function clusterSkip(): string {
  const reason = inject('clusterSkipReason');
  if (reason) process.stderr.write(`[test:cluster] skipped: ${reason}\n`);
  return reason;
}

/** A control plane started before the file's tests and stopped after them, whatever happens. */
export function useControlPlane(): () => ControlPlane {
  let cp: ControlPlane | undefined;
  beforeAll(async () => {
    cp = await startControlPlane({ runId: inject('clusterRunId') });
    process.stderr.write(`[test:cluster] control plane ready in ${(cp.timings.readyMs / 1000).toFixed(1)} s (kube-apiserver /readyz after ${(cp.timings.apiserverReadyMs / 1000).toFixed(1)} s)\n`);
  });
  afterAll(async () => {
    await cp?.stop();
  });
  return () => {
    if (!cp) throw new Error('control plane not started');
    return cp;
  };
}

export async function tempDir(prefix: string): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `fn` returns a value that is not undefined/false, or throws naming `what`. */
export async function eventually<T>(fn: () => Promise<T | undefined | false>, what: string, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await sleep(250);
  }
}

/** `kubectl kustomize DIR` with the built kubectl (its embedded kustomize), as objects. */
export async function kustomize(cp: ControlPlane, dir: string): Promise<K8sObject[]> {
  const out = await cp.kubectlOk(['kustomize', dir]);
  return parseAllDocuments(out).map((d) => d.toJS() as K8sObject).filter((o) => o && o.kind);
}

// ---------- meshlet processes on the host ----------

export interface HostProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<number | null>;
  stop(): Promise<void>;
}

/** `meshlet ARGV…` (node src/cli.ts) run to its end: exit code and output. */
export function runCli(argv: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...argv], { encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

/** `node src/cli.ts <command>` with exactly `env` (plus PATH): nothing from the developer's shell leaks in. */
export function startMeshlet(command: string, env: Record<string, string>): HostProcess {
  const child = spawn(process.execPath, [CLI, command], { env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  // A worker that dies before afterAll still takes its children with it.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      process.off('exit', killOnExit);
      resolve(code);
    }),
  );
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
  };
  return { child, stdout: () => out, stderr: () => err, exited, stop };
}

export interface HostInjector extends HostProcess {
  port: number;
  adminPort: number;
  /** PEM of the CA that signed the serving certificate: the webhooks' caBundle. */
  caPem: string;
  url(path: string): string;
  /** Value of a counter/gauge sample on the injector's /metrics (0 when absent). */
  metric(sample: string): Promise<number>;
}

/**
 * A real `meshlet injector` on 127.0.0.1, serving a certificate with the SANs the API server
 * checks (the Service name deploy/ uses, and 127.0.0.1 for the URL the tests register).
 */
export async function startHostInjector(dir: string, env: Record<string, string> = {}): Promise<HostInjector> {
  const ca = await createClusterCa('meshlet-webhook-ca');
  const serving = await ca.issue({ cn: 'meshlet-injector', usage: 'server', dns: ['meshlet-injector.meshlet-system.svc'], ips: ['127.0.0.1'] });
  const certFile = join(dir, 'injector-tls.crt');
  const keyFile = join(dir, 'injector-tls.key');
  await writeFile(certFile, serving.cert);
  await writeFile(keyFile, serving.key, { mode: 0o600 });
  const p = startMeshlet('injector', {
    MESHLET_INJECTOR_TLS_CERT: certFile,
    MESHLET_INJECTOR_TLS_KEY: keyFile,
    MESHLET_INJECTOR_HOST: '127.0.0.1',
    MESHLET_INJECTOR_PORT: '0',
    MESHLET_INJECTOR_ADMIN_PORT: '0',
    ...env,
  });
  const line = await eventually(async () => {
    if (p.child.exitCode !== null) throw new Error(`meshlet injector exited ${p.child.exitCode}: ${p.stderr()}`);
    return /listening on https:\/\/[^:]+:(\d+).*admin on :(\d+)/.exec(p.stdout()) ?? undefined;
  }, 'meshlet injector to listen', 60_000);
  const port = Number(line[1]);
  const adminPort = Number(line[2]);
  return {
    ...p,
    port,
    adminPort,
    caPem: ca.cert,
    url: (path) => `https://127.0.0.1:${port}${path}`,
    async metric(sample) {
      const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
      const row = text.split('\n').find((l) => l.startsWith(`${sample} `));
      return row ? Number(row.split(' ')[1]) : 0;
    },
  };
}

type WebhookConfiguration = K8sObject & { webhooks: { name: string; clientConfig: Record<string, unknown> }[] };

/**
 * deploy/'s webhook configuration of `kind`, exactly as kustomize builds it, with only each
 * webhook's clientConfig changed: the URL of the host injector and its CA as caBundle.
 */
export async function deployWebhookOnHost(cp: ControlPlane, kind: 'MutatingWebhookConfiguration' | 'ValidatingWebhookConfiguration', baseUrl: (path: string) => string, caPem: string): Promise<WebhookConfiguration> {
  const objects = await kustomize(cp, DEPLOY);
  const config = objects.find((o) => o.kind === kind) as WebhookConfiguration | undefined;
  if (!config) throw new Error(`deploy/ has no ${kind}`);
  for (const w of config.webhooks) {
    const service = w.clientConfig['service'] as { path: string };
    w.clientConfig = { url: baseUrl(service.path), caBundle: Buffer.from(caPem).toString('base64') };
  }
  await cp.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(config) });
  return config;
}

/** A namespace, labelled as given; created with kubectl apply (idempotent). */
export async function namespace(cp: ControlPlane, name: string, labels: Record<string, string> = {}): Promise<void> {
  await cp.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } }) });
  // The ServiceAccount admission plugin refuses pods until the controller made "default".
  await eventually(async () => (await cp.api('GET', `/api/v1/namespaces/${name}/serviceaccounts/default`)).status === 200, `ServiceAccount ${name}/default`);
}
