import type { AppProbe } from '../../../data-plane/sidecar/sidecar-env.ts';
import { PodRefusedError } from './errors.ts';
import { ADMIN_PORT, appHealthPath } from './pod-layout.ts';
import { PROBE_KINDS, type Container, type Probe } from './pod-shape.ts';

export interface ProbeRewrite {
  containerIndex: number;
  field: (typeof PROBE_KINDS)[number][0];
  probe: Probe;
}

export interface ProbePlan {
  rewrites: ProbeRewrite[];
  /** MESHLET_APP_PROBES: the originals, keyed `<container>/<kind>`. */
  appProbes: Record<string, AppProbe>;
  warnings: string[];
}

/**
 * Kubelet probes the pod IP in plaintext; under STRICT inbound the sidecar would refuse it.
 * So an httpGet probe on a meshed port moves to the sidecar's admin port as
 * `GET /app-health/<container>/<kind>`, and the sidecar calls the app's original probe over
 * loopback (Istio's probe rewrite). The original goes into MESHLET_APP_PROBES.
 * Left alone: exec probes (run inside the container), probes with `host` (kubelet dials
 * that host, not the pod), probes on skipped ports (reached directly). tcpSocket probes only
 * test that the sidecar accepts, and gRPC probes are refused under STRICT: both get a warning.
 */
export function planProbes(containers: readonly Container[], meshedPorts: ReadonlySet<number>): ProbePlan {
  const plan: ProbePlan = { rewrites: [], appProbes: {}, warnings: [] };
  const problems: string[] = [];
  containers.forEach((c, containerIndex) => {
    for (const [field, kind] of PROBE_KINDS) {
      const probe = c[field];
      if (!probe || typeof probe !== 'object') continue;
      const tcpPort = (probe.tcpSocket as { port?: unknown } | undefined)?.port;
      const grpcPort = (probe.grpc as { port?: unknown } | undefined)?.port;
      if (tcpPort !== undefined) {
        const p = resolvePort(c, tcpPort);
        if (p !== undefined && meshedPorts.has(p)) plan.warnings.push(`container ${c.name} ${field} is a tcpSocket probe on meshed port ${p}: it checks that the sidecar accepts, not that the app does; prefer httpGet or exec`);
      }
      if (typeof grpcPort === 'number' && meshedPorts.has(grpcPort)) {
        plan.warnings.push(`container ${c.name} ${field} is a grpc probe on meshed port ${grpcPort}: kubelet's plaintext call is refused by the STRICT sidecar; use an exec or httpGet probe, or list the port in meshlet.io/skip-inbound-ports`);
      }
      const get = probe.httpGet;
      if (!get || get.host) continue;
      const appPort = resolvePort(c, get.port);
      if (appPort === undefined) {
        problems.push(`container ${c.name} ${field}.httpGet.port ${JSON.stringify(get.port)} names no port of the container`);
        continue;
      }
      if (!meshedPorts.has(appPort)) continue;
      const original: AppProbe = { port: appPort, path: get.path || '/', scheme: get.scheme === 'HTTPS' ? 'HTTPS' : 'HTTP' };
      if (get.httpHeaders && get.httpHeaders.length > 0) original.headers = get.httpHeaders.map((h) => ({ name: h.name, value: h.value }));
      plan.appProbes[`${c.name}/${kind}`] = original;
      plan.rewrites.push({ containerIndex, field, probe: { ...probe, httpGet: { path: appHealthPath(c.name, kind), port: ADMIN_PORT, scheme: 'HTTP' } } });
    }
  });
  if (problems.length > 0) throw new PodRefusedError('INJECTOR_PROBE_PORT_UNKNOWN', problems);
  return plan;
}

/** A probe port is a number or the name of one of the container's ports (IntOrString). */
function resolvePort(c: Container, port: unknown): number | undefined {
  if (typeof port === 'number') return port;
  if (typeof port === 'string' && /^\d+$/.test(port)) return Number(port);
  return c.ports?.find((p) => p.name === port)?.containerPort;
}
