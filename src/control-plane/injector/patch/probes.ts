import type { AppProbe } from '../../../data-plane/sidecar/sidecar-env.ts';
import { PodRefusedError } from './errors.ts';
import { ADMIN_PORT, appHealthPath, INBOUND_CATCHALL_PORT, OUTBOUND_PORT } from './pod-layout.ts';
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
 * The ports kubelet's probe reaches without interception. Every other port is intercepted,
 * meshed (declared) or not, so a probe there is rewritten either way.
 */
export interface ProbePorts {
  /** meshlet.io/skip-inbound-ports: reached directly, never intercepted. */
  skipped: ReadonlySet<number>;
  /** The sidecar's inbound listen ports (15100, …): iptables lets them through to the sidecar. */
  listen: ReadonlySet<number>;
}

/** The probe handlers kubelet knows; exactly one is set on a valid probe. */
type Handler = 'httpGet' | 'grpc' | 'tcpSocket' | 'exec';
const HANDLERS: readonly Handler[] = ['httpGet', 'grpc', 'tcpSocket', 'exec'];

/**
 * Kubelet probes the pod IP in plaintext, and once the pod's iptables rules are in, every
 * inbound TCP port except the skipped ones is intercepted: a meshed port goes to a STRICT
 * listener (kubelet has no client certificate: refused), an undeclared port goes to the
 * catch-all (connection reset). So every httpGet, grpc and tcpSocket probe on an intercepted
 * port moves to the sidecar's admin port as `GET /app-health/<container>/<kind>` (scheme
 * HTTP), and the sidecar runs the original against the app over loopback, which iptables
 * never intercepts (Istio's probe rewrite, extended to grpc and tcp): an HTTP GET whose status
 * passes through, the standard gRPC health check (200 only for SERVING), or a TCP connect. The
 * originals go into MESHLET_APP_PROBES; every other field of the probe (periodSeconds,
 * timeoutSeconds, failureThreshold, …) is kept, and timeoutSeconds also goes to the sidecar so
 * it answers before kubelet gives up.
 *
 * Left alone: exec probes (run inside the container), probes with `host` (kubelet dials that
 * host, not this pod; a warning, since a meshed host would refuse kubelet too), probes on
 * skipped ports (reached directly), probes on the sidecar's own ports (a warning: they test
 * the sidecar, not the app). A named port that the container does not declare is refused
 * (INJECTOR_PROBE_PORT_UNKNOWN): kubelet could not resolve it either.
 */
export function planProbes(containers: readonly Container[], ports: ProbePorts): ProbePlan {
  const plan: ProbePlan = { rewrites: [], appProbes: {}, warnings: [] };
  const problems: string[] = [];
  containers.forEach((c, containerIndex) => {
    for (const [field, kind] of PROBE_KINDS) {
      const probe = c[field];
      if (!probe || typeof probe !== 'object') continue;
      const handler = HANDLERS.find((h) => probe[h] !== undefined && probe[h] !== null);
      if (handler === undefined || handler === 'exec') continue;
      const action = (typeof probe[handler] === 'object' ? probe[handler] : {}) as { port?: unknown; host?: unknown; service?: unknown };
      const where = `container ${c.name} ${field}.${handler}`;
      if (typeof action.host === 'string' && action.host !== '') {
        plan.warnings.push(`${where} has host ${action.host}: not rewritten, kubelet calls that host directly; if it is a meshed pod, its STRICT sidecar refuses kubelet's plaintext probe`);
        continue;
      }
      const appPort = resolvePort(c, action.port);
      if (appPort === undefined) {
        problems.push(`${where}.port ${JSON.stringify(action.port)} names no port of the container`);
        continue;
      }
      if (ports.skipped.has(appPort)) continue;
      if (appPort === ADMIN_PORT || ports.listen.has(appPort) || appPort === OUTBOUND_PORT || appPort === INBOUND_CATCHALL_PORT) {
        plan.warnings.push(`${where} is on port ${appPort}, which the meshlet sidecar binds: not rewritten, the probe would test the sidecar, not the app; probe the app's own port`);
        continue;
      }
      const original = appProbeOf(handler, probe, appPort);
      plan.appProbes[`${c.name}/${kind}`] = original;
      const rewritten: Probe = { ...probe, httpGet: { path: appHealthPath(c.name, kind), port: ADMIN_PORT, scheme: 'HTTP' } };
      // One handler per probe: the API server rejects a probe with two.
      if (handler !== 'httpGet') delete rewritten[handler];
      plan.rewrites.push({ containerIndex, field, probe: rewritten });
    }
  });
  if (problems.length > 0) throw new PodRefusedError('INJECTOR_PROBE_PORT_UNKNOWN', problems);
  return plan;
}

/**
 * The pod's own sidecars (init containers with `restartPolicy: Always`) may have probes too.
 * They are not rewritten: in regular-container mode the proxy starts after every init
 * container, so a startupProbe moved to the admin port could never pass. One on an
 * intercepted port fails once meshlet-init has run: a warning says so and what to do.
 */
export function initContainerProbeWarnings(initContainers: readonly Container[], ports: ProbePorts): string[] {
  const warnings: string[] = [];
  for (const c of initContainers) {
    if (!c || typeof c !== 'object' || c.restartPolicy !== 'Always') continue;
    for (const [field] of PROBE_KINDS) {
      const probe = c[field];
      if (!probe || typeof probe !== 'object') continue;
      const handler = HANDLERS.find((h) => probe[h] !== undefined && probe[h] !== null);
      if (handler === undefined || handler === 'exec') continue;
      const action = (typeof probe[handler] === 'object' ? probe[handler] : {}) as { port?: unknown; host?: unknown };
      if (typeof action.host === 'string' && action.host !== '') continue;
      const port = resolvePort(c, action.port);
      if (port === undefined || ports.skipped.has(port) || port === ADMIN_PORT || ports.listen.has(port)) continue;
      warnings.push(`init container ${c.name} ${field}.${handler} on port ${port} is not rewritten (only the probes of spec.containers are): iptables intercepts kubelet's probe and it fails; list the port in meshlet.io/skip-inbound-ports or use an exec probe`);
    }
  }
  return warnings;
}

function appProbeOf(handler: 'httpGet' | 'grpc' | 'tcpSocket', probe: Probe, port: number): AppProbe {
  const timing = typeof probe.timeoutSeconds === 'number' && Number.isInteger(probe.timeoutSeconds) && probe.timeoutSeconds > 0 ? { timeoutSeconds: probe.timeoutSeconds } : {};
  if (handler === 'tcpSocket') return { kind: 'tcp', port, ...timing };
  if (handler === 'grpc') {
    const service = (probe.grpc as { service?: unknown }).service;
    return { kind: 'grpc', port, ...(typeof service === 'string' && service !== '' ? { service } : {}), ...timing };
  }
  const get = probe.httpGet!;
  // kind omitted for http: absent means http, the format every sidecar reads.
  const original: AppProbe = { port, path: get.path || '/', scheme: get.scheme === 'HTTPS' ? 'HTTPS' : 'HTTP' };
  if (get.httpHeaders && get.httpHeaders.length > 0) original.headers = get.httpHeaders.map((h) => ({ name: h.name, value: h.value }));
  return { ...original, ...timing };
}

/** A probe port is a number or the name of one of the container's ports (IntOrString). */
function resolvePort(c: Container, port: unknown): number | undefined {
  if (typeof port === 'number') return port;
  if (typeof port === 'string' && /^\d+$/.test(port)) return Number(port);
  return c.ports?.find((p) => p.name === port)?.containerPort;
}
