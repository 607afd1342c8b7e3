import { INBOUND_LISTEN_BASE } from '../../../data-plane/sidecar/sidecar-env.ts';
import type { PortProtocol } from '../../../data-plane/policy/types.ts';
import type { PodAnnotations } from './annotations.ts';
import { PodRefusedError } from './errors.ts';
import { ADMIN_PORT, INBOUND_CATCHALL_PORT, OUTBOUND_PORT } from './pod-layout.ts';
import type { Container, ContainerPort } from './pod-shape.ts';

export interface InboundPortPlan {
  appPort: number;
  listenPort: number;
  protocol: PortProtocol;
}

/**
 * The app ports the sidecar fronts: every TCP containerPort the app containers declare (in
 * declaration order, which fixes the listen ports 15100, 15101, …), minus the skipped ones.
 * UDP and SCTP ports are left alone: iptables only redirects TCP.
 */
export function planInboundPorts(containers: readonly Container[], annotations: PodAnnotations): InboundPortPlan[] {
  const skipped = new Set(annotations.skipInboundPorts);
  const opaque = new Set(annotations.opaquePorts);
  const seen = new Set<number>();
  const declared: { port: ContainerPort; container: string }[] = [];
  for (const c of containers) {
    for (const p of c.ports ?? []) {
      if ((p.protocol ?? 'TCP') !== 'TCP' || seen.has(p.containerPort)) continue;
      seen.add(p.containerPort);
      declared.push({ port: p, container: c.name });
    }
  }
  const meshed = declared.filter((d) => !skipped.has(d.port.containerPort));

  const problems: string[] = [];
  const listenPorts = new Set(meshed.map((_, i) => INBOUND_LISTEN_BASE + i));
  const sidecarPorts = new Set([OUTBOUND_PORT, INBOUND_CATCHALL_PORT, ADMIN_PORT, ...listenPorts]);
  for (const d of declared) {
    if (sidecarPorts.has(d.port.containerPort)) {
      problems.push(`container ${d.container} declares port ${d.port.containerPort}, which the meshlet sidecar binds (15001, 15006, 15020 and 15100+); move the app to another port`);
    }
  }
  if (problems.length > 0) throw new PodRefusedError('INJECTOR_PORT_CONFLICT', problems);

  const annotationProblems: string[] = [];
  const meshedPorts = new Set(meshed.map((d) => d.port.containerPort));
  for (const p of annotations.permissivePorts) {
    if (!meshedPorts.has(p)) annotationProblems.push(`annotation meshlet.io/permissive-ports: port ${p} is not a meshed containerPort of the pod (declared TCP ports, minus meshlet.io/skip-inbound-ports)`);
  }
  for (const p of annotations.opaquePorts) {
    if (!meshedPorts.has(p)) annotationProblems.push(`annotation meshlet.io/opaque-ports: port ${p} is not a meshed containerPort of the pod (declared TCP ports, minus meshlet.io/skip-inbound-ports)`);
  }
  if (annotationProblems.length > 0) throw new PodRefusedError('INJECTOR_ANNOTATION_INVALID', annotationProblems);

  return meshed.map((d, i) => ({
    appPort: d.port.containerPort,
    listenPort: INBOUND_LISTEN_BASE + i,
    protocol: opaque.has(d.port.containerPort) ? 'tcp' : protocolOf(d.port),
  }));
}

/**
 * appProtocol first (the field Kubernetes made for this), then the Istio-style port name
 * convention (`grpc`, `grpc-web`, `tcp-db`), else HTTP: the sidecar reads HTTP/1.1 and h2c.
 */
function protocolOf(p: ContainerPort): PortProtocol {
  const app = p.appProtocol?.toLowerCase();
  if (app === 'grpc') return 'grpc';
  if (app === 'tcp') return 'tcp';
  if (app !== undefined) return 'http';
  const name = p.name?.toLowerCase() ?? '';
  if (name.startsWith('grpc')) return 'grpc';
  if (name === 'tcp' || name.startsWith('tcp-')) return 'tcp';
  return 'http';
}

/** `8080:15100/http,9090:15101/grpc`: listen ports written out, so sidecar and iptables agree without counting. */
export function formatInboundPorts(ports: readonly InboundPortPlan[]): string {
  return ports.map((p) => `${p.appPort}:${p.listenPort}/${p.protocol}`).join(',');
}
