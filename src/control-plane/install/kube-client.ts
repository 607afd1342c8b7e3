import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { request } from 'node:https';
import { homedir } from 'node:os';
import { delimiter, dirname, isAbsolute, join } from 'node:path';
import { parse } from 'yaml';
import { MeshletError } from '../../common/errors/meshlet-error.ts';

/**
 * A small Kubernetes API client for `meshlet check`: node:https with the credentials kubectl
 * would use. The discovery watch (src/control-plane/discovery) knows only the in-cluster token
 * and CA files; this one reads a kubeconfig too:
 *
 *   --kubeconfig FILE, else the first file of $KUBECONFIG, else ~/.kube/config, else (when
 *   KUBERNETES_SERVICE_HOST is set and no file exists) the pod's ServiceAccount.
 *
 * From the kubeconfig's current context (or --context): the cluster's server,
 * certificate-authority(-data), insecure-skip-tls-verify, tls-server-name; the user's
 * client-certificate(-data) + client-key(-data), token, tokenFile, username/password, or an
 * exec credential plugin (client.authentication.k8s.io, run as kubectl runs it). auth-provider
 * (the removed in-tree gcp/azure plugins) is refused with what to use instead.
 */

export class KubeConfigError extends MeshletError {}

export interface KubeTarget {
  /** Where the credentials came from, for messages: a kubeconfig path, or "in-cluster service account". */
  source: string;
  context?: string;
  server: string;
  ca?: string;
  cert?: string;
  key?: string;
  token?: string;
  basic?: string;
  insecure?: boolean;
  servername?: string;
}

export interface ApiResponse {
  status: number;
  body: unknown;
}

export interface KubeClient {
  target: KubeTarget;
  request(method: string, path: string, body?: unknown): Promise<ApiResponse>;
}

const IN_CLUSTER_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

type Named<T> = { name: string } & T;
interface KubeConfigFile {
  'current-context'?: string;
  contexts?: Named<{ context?: { cluster?: string; user?: string } }>[];
  clusters?: Named<{ cluster?: Record<string, unknown> }>[];
  users?: Named<{ user?: Record<string, unknown> }>[];
}

async function readText(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new KubeConfigError('KUBECONFIG_UNREADABLE', `cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

async function exists(path: string): Promise<boolean> {
  return readFile(path).then(() => true, () => false);
}

/** Which kubeconfig kubectl would read, or undefined for in-cluster. */
export async function kubeconfigPath(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  if (flag) return flag;
  const fromEnv = (env['KUBECONFIG'] ?? '').split(delimiter).filter(Boolean);
  for (const p of fromEnv) if (await exists(p)) return p;
  if (fromEnv.length > 0) return fromEnv[0];
  const home = join(env['HOME'] || homedir(), '.kube', 'config');
  if (await exists(home)) return home;
  if (env['KUBERNETES_SERVICE_HOST']) return undefined;
  return home;
}

function str(o: Record<string, unknown> | undefined, key: string): string | undefined {
  const v = o?.[key];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** The connection settings for `kubeconfig` (or the in-cluster service account when undefined). */
export async function resolveTarget(opts: { kubeconfig?: string; context?: string; env?: NodeJS.ProcessEnv } = {}): Promise<KubeTarget> {
  const env = opts.env ?? process.env;
  const path = await kubeconfigPath(opts.kubeconfig, env);
  if (path === undefined) {
    const host = env['KUBERNETES_SERVICE_HOST']!;
    const port = env['KUBERNETES_SERVICE_PORT'] ?? '443';
    return {
      source: 'in-cluster service account',
      server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
      ca: await readText(join(IN_CLUSTER_DIR, 'ca.crt'), 'the service account CA'),
      token: (await readText(join(IN_CLUSTER_DIR, 'token'), 'the service account token')).trim(),
    };
  }
  const text = await readText(path, 'kubeconfig');
  let config: KubeConfigFile;
  try {
    config = (parse(text) ?? {}) as KubeConfigFile;
  } catch (err) {
    throw new KubeConfigError('KUBECONFIG_INVALID', `${path} is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  const contextName = opts.context ?? config['current-context'];
  if (!contextName) throw new KubeConfigError('KUBECONFIG_NO_CONTEXT', `${path} has no current-context; pass --context NAME`);
  const context = config.contexts?.find((c) => c.name === contextName)?.context;
  if (!context) throw new KubeConfigError('KUBECONFIG_NO_CONTEXT', `${path} has no context "${contextName}"`);
  const cluster = config.clusters?.find((c) => c.name === context.cluster)?.cluster;
  if (!cluster) throw new KubeConfigError('KUBECONFIG_INVALID', `${path}: context "${contextName}" names cluster "${context.cluster}", which is not in the file`);
  const user = context.user === undefined ? {} : config.users?.find((u) => u.name === context.user)?.user;
  if (!user) throw new KubeConfigError('KUBECONFIG_INVALID', `${path}: context "${contextName}" names user "${context.user}", which is not in the file`);
  const server = str(cluster, 'server');
  if (!server) throw new KubeConfigError('KUBECONFIG_INVALID', `${path}: cluster "${context.cluster}" has no server`);
  const base = dirname(path);
  const file = (p: string) => (isAbsolute(p) ? p : join(base, p));
  const dataOrFile = async (dataKey: string, fileKey: string, what: string) => {
    const data = str(cluster, dataKey) ?? str(user, dataKey);
    if (data) return Buffer.from(data, 'base64').toString('utf8');
    const f = str(cluster, fileKey) ?? str(user, fileKey);
    return f ? readText(file(f), what) : undefined;
  };
  const target: KubeTarget = {
    source: path,
    context: contextName,
    server,
    ca: await dataOrFile('certificate-authority-data', 'certificate-authority', 'certificate-authority'),
    insecure: cluster['insecure-skip-tls-verify'] === true,
    servername: str(cluster, 'tls-server-name'),
    cert: await dataOrFile('client-certificate-data', 'client-certificate', 'client-certificate'),
    key: await dataOrFile('client-key-data', 'client-key', 'client-key'),
    token: str(user, 'token') ?? (str(user, 'tokenFile') ? (await readText(file(str(user, 'tokenFile')!), 'tokenFile')).trim() : undefined),
  };
  const username = str(user, 'username');
  if (username) target.basic = `${username}:${str(user, 'password') ?? ''}`;
  if (user['auth-provider']) {
    throw new KubeConfigError('KUBECONFIG_UNSUPPORTED_AUTH', `${path}: user "${context.user}" uses an auth-provider, which meshlet check does not run (kubectl removed them too); use the provider's exec plugin (e.g. gke-gcloud-auth-plugin, kubelogin) or a token`);
  }
  const exec = user['exec'] as ExecConfig | undefined;
  if (exec && !target.token && !target.cert) Object.assign(target, await runExecPlugin(exec, server, env));
  return target;
}

interface ExecConfig {
  command?: string;
  args?: string[];
  env?: { name: string; value: string }[] | null;
  apiVersion?: string;
}

/** Runs a client.authentication.k8s.io exec plugin as kubectl does and takes its token or client certificate. */
function runExecPlugin(exec: ExecConfig, server: string, env: NodeJS.ProcessEnv): Promise<Partial<KubeTarget>> {
  const command = exec.command;
  if (!command) return Promise.reject(new KubeConfigError('KUBECONFIG_INVALID', 'the user\'s exec plugin has no command'));
  const apiVersion = exec.apiVersion ?? 'client.authentication.k8s.io/v1';
  const info = { apiVersion, kind: 'ExecCredential', spec: { interactive: false, cluster: { server } } };
  const childEnv: NodeJS.ProcessEnv = { ...env, KUBERNETES_EXEC_INFO: JSON.stringify(info) };
  for (const e of exec.env ?? []) childEnv[e.name] = e.value;
  return new Promise((resolve, reject) => {
    execFile(command, exec.args ?? [], { env: childEnv, timeout: 60_000, maxBuffer: 4 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found on PATH' : `failed: ${String(stderr).trim().split('\n').pop() || err.message}`;
        return reject(new KubeConfigError('KUBECONFIG_EXEC_FAILED', `credential plugin ${command} ${why}`));
      }
      try {
        const status = (JSON.parse(stdout) as { status?: { token?: string; clientCertificateData?: string; clientKeyData?: string } }).status ?? {};
        if (status.token) return resolve({ token: status.token });
        if (status.clientCertificateData && status.clientKeyData) return resolve({ cert: status.clientCertificateData, key: status.clientKeyData });
        reject(new KubeConfigError('KUBECONFIG_EXEC_FAILED', `credential plugin ${command} returned neither a token nor a client certificate`));
      } catch {
        reject(new KubeConfigError('KUBECONFIG_EXEC_FAILED', `credential plugin ${command} did not print an ExecCredential (JSON)`));
      }
    });
  });
}

export function kubeClient(target: KubeTarget, timeoutMs = 15_000): KubeClient {
  return {
    target,
    request(method, path, body) {
      return new Promise((resolve, reject) => {
        const payload = body === undefined ? undefined : JSON.stringify(body);
        const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'meshlet-check' };
        if (payload !== undefined) headers['content-type'] = 'application/json';
        if (target.token) headers['authorization'] = `Bearer ${target.token}`;
        else if (target.basic) headers['authorization'] = `Basic ${Buffer.from(target.basic).toString('base64')}`;
        const req = request(`${target.server.replace(/\/$/, '')}${path}`, {
          method,
          headers,
          ...(target.ca ? { ca: target.ca } : {}),
          ...(target.cert && target.key ? { cert: target.cert, key: target.key } : {}),
          ...(target.servername ? { servername: target.servername } : {}),
          rejectUnauthorized: !target.insecure,
          agent: false,
          timeout: timeoutMs,
        }, (res) => {
          let text = '';
          res.setEncoding('utf8').on('data', (d: string) => (text += d));
          res.on('end', () => {
            let parsed: unknown = text;
            try {
              parsed = JSON.parse(text);
            } catch {
              /* plain text */
            }
            resolve({ status: res.statusCode ?? 0, body: parsed });
          });
          res.on('error', reject);
        });
        req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)));
        req.on('error', reject);
        req.end(payload);
      });
    },
  };
}
