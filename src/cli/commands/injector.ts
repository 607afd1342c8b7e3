import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:https';
import type { Command } from '../command.ts';
import { parseFlags } from '../command.ts';
import { MeshletError } from '../../errors/meshlet-error.ts';
import { createWebhookServer, type AdmissionHandler } from '../../../injector/webhook-server.ts';
import { validatePolicyConfigMap } from '../../../injector/validate.ts';
import { Registry } from 'prom-client';
import { AdminServer } from '../../admin/admin-server.ts';
import { ConfigError, describeEnv, type EnvVar } from '../../config/env.ts';
import { createMutateHandler } from '../../../injector/mutate.ts';
import { promInjectorMetrics } from '../../../injector/metrics.ts';
import { INJECTION_ENV, readInjectionSettings, type InjectionSettings } from '../../../injector/patch/index.ts';
import { WEBHOOK_HANDSHAKE_TIMEOUT_MS, WEBHOOK_MAX_CONNECTIONS } from '../../../injector/webhook-server.ts';
import { ADMIN_MAX_CONNECTIONS } from '../../admin/admin-server.ts';
import { ListenerMetrics } from '../../metrics/listener-metrics.ts';
import { ConnectionGuard } from '../../net/connection-guard.ts';
import { CONTROL_PLANE_FD_RESERVE, describeClamp, fitDescriptorBudget, readOpenFilesLimit, type DescriptorDemand } from '../../net/descriptor-budget.ts';

/** The injector's environment is wrong; every bad variable is listed in one message. */
export class InjectorConfigError extends MeshletError {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super('INJECTOR_BAD_CONFIG', `invalid injector configuration:\n  ${problems.join('\n  ')}`);
    this.problems = problems;
  }
}

export interface InjectorConfig {
  certFile: string;
  keyFile: string;
  host: string;
  port: number;
  requestTimeoutMs: number;
  maxBodyBytes: number;
  /** TLS handshake deadline of a webhook connection, from accept. */
  handshakeTimeoutMs: number;
  /** Open webhook connections at most; more are closed at accept and counted. */
  maxConnections: number;
  /** Plain-HTTP admin port (/live /ready /metrics); 0 = any free port; undefined = none. */
  adminPort: number | undefined;
  /** What the injected sidecars get (image, trust domain, defaults…). */
  injection: Readonly<InjectionSettings>;
}

/** Reads the injector's settings from the environment, reporting every bad variable at once. */
export function injectorConfigFromEnv(env: NodeJS.ProcessEnv): InjectorConfig {
  const problems: string[] = [];
  const required = (name: string): string => {
    const v = env[name];
    if (!v) problems.push(`${name} is required (path to a PEM file)`);
    return v ?? '';
  };
  const int = (name: string, dflt: number, min: number, max: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return dflt;
    const n = Number(raw);
    if (!/^\d+$/.test(raw) || n < min || n > max) problems.push(`${name} must be an integer from ${min} to ${max} (got ${JSON.stringify(raw)})`);
    return n;
  };
  const config: InjectorConfig = {
    certFile: required('MESHLET_INJECTOR_TLS_CERT'),
    keyFile: required('MESHLET_INJECTOR_TLS_KEY'),
    host: env.MESHLET_INJECTOR_HOST || '0.0.0.0',
    port: int('MESHLET_INJECTOR_PORT', 8443, 0, 65535),
    requestTimeoutMs: int('MESHLET_INJECTOR_REQUEST_TIMEOUT_MS', 10_000, 100, 30_000),
    maxBodyBytes: int('MESHLET_INJECTOR_MAX_BODY_BYTES', 3 * 1024 * 1024, 1024, 64 * 1024 * 1024),
    handshakeTimeoutMs: int('MESHLET_INJECTOR_HANDSHAKE_TIMEOUT_MS', WEBHOOK_HANDSHAKE_TIMEOUT_MS, 100, 30_000),
    maxConnections: int('MESHLET_INJECTOR_MAX_CONNECTIONS', WEBHOOK_MAX_CONNECTIONS, 1, 1_000_000),
    adminPort: env.MESHLET_INJECTOR_ADMIN_PORT === 'off' ? undefined : int('MESHLET_INJECTOR_ADMIN_PORT', 9090, 0, 65535),
    injection: undefined as unknown as Readonly<InjectionSettings>,
  };
  // The injection settings include the mesh default policy the sidecars get: a typo there is
  // refused here, with the rest.
  try {
    config.injection = readInjectionSettings(env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    for (const p of err.problems) problems.push(`${p.variable}=${p.value === undefined ? '(unset)' : JSON.stringify(p.value)}: ${p.message}`);
  }
  if (problems.length > 0) throw new InjectorConfigError(problems);
  return config;
}

/** The webhook routes the injector serves: pod injection and policy validation. */
export function injectorRoutes(injection: Readonly<InjectionSettings>, registry: Registry, onError?: (err: unknown) => void): Readonly<Record<string, AdmissionHandler>> {
  return {
    '/mutate': createMutateHandler({ settings: injection, metrics: promInjectorMetrics(registry), ...(onError ? { onError } : {}) }),
    '/validate': validatePolicyConfigMap,
  };
}

export interface RunningInjector {
  server: Server;
  port: number;
  adminPort: number | undefined;
  registry: Registry;
  close(): Promise<void>;
}

export async function startInjector(config: InjectorConfig): Promise<RunningInjector> {
  let cert: Buffer, key: Buffer;
  try {
    [cert, key] = await Promise.all([readFile(config.certFile), readFile(config.keyFile)]);
  } catch (err) {
    throw new InjectorConfigError([`cannot read the TLS certificate or key: ${(err as Error).message}`]);
  }
  const registry = new Registry();
  const routes = injectorRoutes(config.injection, registry, (err) => process.stderr.write(`meshlet injector: injection failed: ${(err as Error).message}\n`));
  // Descriptor headroom: the webhook's cap must leave the admin port and a reserve free (EMFILE otherwise).
  const demands: DescriptorDemand[] = [
    { listener: 'webhook', ports: 1, maxConnections: config.maxConnections, perConnection: 1, clampable: true },
    ...(config.adminPort === undefined ? [] : [{ listener: 'admin' as const, ports: 1, maxConnections: ADMIN_MAX_CONNECTIONS, perConnection: 1 as const, clampable: false }]),
  ];
  const budget = fitDescriptorBudget(demands, CONTROL_PLANE_FD_RESERVE, readOpenFilesLimit());
  if (budget.clamped) process.stderr.write(`meshlet injector: the open-files limit is ${budget.limit}: connection caps lowered to keep ${budget.reserve} descriptors free (${describeClamp(demands, budget)})\n`);
  const listeners = new ListenerMetrics(registry);
  const guard = new ConnectionGuard({ listener: 'webhook', maxConnections: budget.caps.get('webhook')!, observer: listeners });
  const server = createWebhookServer({ cert, key, routes, requestTimeoutMs: config.requestTimeoutMs, maxBodyBytes: config.maxBodyBytes, handshakeTimeoutMs: config.handshakeTimeoutMs, guard });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  let admin: AdminServer | undefined;
  let adminPort: number | undefined;
  if (config.adminPort !== undefined) {
    admin = new AdminServer({
      registry,
      connections: () => [],
      readiness: () => ({ ready: server.listening, checks: { webhook: { ok: server.listening } } }),
      guard: new ConnectionGuard({ listener: 'admin', maxConnections: ADMIN_MAX_CONNECTIONS, observer: listeners }),
    });
    adminPort = (await admin.listen(config.adminPort, config.host)).port;
  }
  return {
    server,
    port: (server.address() as AddressInfo).port,
    adminPort,
    registry,
    close: async () => {
      await admin?.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

const help = () => `Usage: meshlet injector

Runs the admission webhook server over HTTPS:
  POST /mutate     injects the meshlet sidecar into pods (AdmissionReview admission.k8s.io/v1, JSONPatch)
  POST /validate   validates meshlet policy ConfigMaps (AdmissionReview admission.k8s.io/v1)
  GET  /healthz    200 "ok" (for readiness/liveness probes)
and a plain-HTTP admin port with /live, /ready and /metrics (injector metrics).

Environment:
  MESHLET_INJECTOR_TLS_CERT            PEM serving certificate (SAN <service>.<namespace>.svc) — required
  MESHLET_INJECTOR_TLS_KEY             PEM private key — required
  MESHLET_INJECTOR_HOST                listen address (default 0.0.0.0)
  MESHLET_INJECTOR_PORT                listen port (default 8443)
  MESHLET_INJECTOR_REQUEST_TIMEOUT_MS  whole-request deadline, 100–30000 (default 10000)
  MESHLET_INJECTOR_MAX_BODY_BYTES      largest AdmissionReview accepted (default 3145728; larger -> 413)
  MESHLET_INJECTOR_HANDSHAKE_TIMEOUT_MS  TLS handshake deadline from accept, 100–30000 (default 10000)
  MESHLET_INJECTOR_MAX_CONNECTIONS     open webhook connections at most (default 256; more are closed at accept)
  MESHLET_INJECTOR_ADMIN_PORT          admin port for /live /ready /metrics (default 9090; "off" disables)
  MESHLET_DEFAULT_POLICY               mesh default policy: deny | all-authenticated | audit (default deny)

What injected pods get:
${describeEnv(Object.values(INJECTION_ENV) as EnvVar<unknown>[])}

Every bad variable is reported at once and the process exits 1. Stops on SIGTERM/SIGINT.`;

export const commands: Command[] = [
  {
    name: 'injector',
    summary: 'run the admission webhook (/mutate, /validate)',
    get help() {
      return help();
    },
    async run(argv, io) {
      parseFlags(argv, {});
      const running = await startInjector(injectorConfigFromEnv(process.env));
      const admin = running.adminPort === undefined ? '' : `; admin on :${running.adminPort}`;
      io.stdout.write(`meshlet injector: listening on https://${process.env.MESHLET_INJECTOR_HOST || '0.0.0.0'}:${running.port} (/mutate, /validate)${admin}\n`);
      await new Promise<void>((resolve) => {
        const stop = () => {
          process.off('SIGTERM', stop);
          process.off('SIGINT', stop);
          void running.close().then(resolve);
        };
        process.on('SIGTERM', stop);
        process.on('SIGINT', stop);
      });
      return 0;
    },
  },
];
