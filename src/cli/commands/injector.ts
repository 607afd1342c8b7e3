import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:https';
import type { Command } from '../command.ts';
import { parseFlags } from '../command.ts';
import { MeshletError } from '../../common/errors/meshlet-error.ts';
import { createWebhookServer, type AdmissionHandler } from '../../control-plane/injector/webhook-server.ts';
import { validatePolicyConfigMap } from '../../control-plane/injector/validate.ts';
import { Registry } from 'prom-client';
import { adminDescriptorDemand, AdminServer } from '../../data-plane/admin/admin-server.ts';
import { describeEnv, type EnvVar } from '../../common/config/env.ts';
import { createMutateHandler } from '../../control-plane/injector/mutate.ts';
import { promInjectorMetrics } from '../../control-plane/injector/metrics.ts';
import { INJECTION_ENV, type InjectionSettings } from '../../control-plane/injector/patch/index.ts';
import { INJECTOR_ENV, readInjectorConfig, type InjectorConfig } from '../../control-plane/injector/config.ts';
import { ListenerMetrics } from '../../data-plane/metrics/listener-metrics.ts';
import { ConnectionGuard } from '../../common/net/connection-guard.ts';
import { CONTROL_PLANE_FD_RESERVE, describeClamp, fitDescriptorBudget, readOpenFilesLimit, type DescriptorDemand } from '../../common/net/descriptor-budget.ts';

/** The injector cannot start with what its configuration names (an unreadable certificate or key). */
export class InjectorConfigError extends MeshletError {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super('INJECTOR_BAD_CONFIG', `invalid injector configuration:\n  ${problems.join('\n  ')}`);
    this.problems = problems;
  }
}

/** The webhook routes the injector serves: pod injection and policy validation. */
export function injectorRoutes(injection: Readonly<InjectionSettings>, registry: Registry, onError?: (err: unknown) => void): Readonly<Record<string, AdmissionHandler>> {
  const metrics = promInjectorMetrics(registry);
  return {
    '/mutate': createMutateHandler({ settings: injection, metrics, ...(onError ? { onError } : {}) }),
    '/validate': (request) => {
      const answer = validatePolicyConfigMap(request);
      metrics.onValidation(answer.allowed ? 'allowed' : 'denied');
      return answer;
    },
  };
}

export interface RunningInjector {
  server: Server;
  port: number;
  adminPort: number | undefined;
  registry: Registry;
  close(): Promise<void>;
}

export async function startInjector(config: Readonly<InjectorConfig>): Promise<RunningInjector> {
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
    ...(config.adminPort === undefined ? [] : [adminDescriptorDemand()]),
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
      guard: new ConnectionGuard({ listener: 'admin', maxConnections: budget.caps.get('admin')!, observer: listeners }),
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

Environment (every variable is checked at start):
${describeEnv(Object.values(INJECTOR_ENV) as EnvVar<unknown>[])}

What injected pods get:
${describeEnv(Object.values(INJECTION_ENV) as EnvVar<unknown>[])}

Every bad variable is reported at once and the process exits 1. See docs/injector.md. Stops on SIGTERM/SIGINT.`;

export const commands: Command[] = [
  {
    name: 'injector',
    summary: 'run the admission webhook (/mutate, /validate)',
    get help() {
      return help();
    },
    async run(argv, io) {
      parseFlags(argv, {});
      const config = readInjectorConfig(process.env);
      const running = await startInjector(config);
      const admin = running.adminPort === undefined ? '' : `; admin on :${running.adminPort}`;
      io.stdout.write(`meshlet injector: listening on https://${config.host}:${running.port} (/mutate, /validate)${admin}\n`);
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
