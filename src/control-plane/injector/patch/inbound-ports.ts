import { protocolFromServicePort, type PortProtocolDecision } from '../../../data-plane/proxy/detect/port-protocol.ts';
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
  for (const p of annotations.portProtocols.keys()) {
    if (!meshedPorts.has(p)) annotationProblems.push(`annotation meshlet.io/port-protocols: port ${p} is not a meshed containerPort of the pod (declared TCP ports, minus meshlet.io/skip-inbound-ports)`);
  }
  if (annotationProblems.length > 0) throw new PodRefusedError('INJECTOR_ANNOTATION_INVALID', annotationProblems);

  return meshed.map((d, i) => {
    const port = d.port.containerPort;
    const declared = annotations.portProtocols.get(port);
    return {
      appPort: port,
      listenPort: INBOUND_LISTEN_BASE + i,
      protocol: opaque.has(port) ? 'tcp' : declared !== undefined && declared !== 'detect' ? fromDecision(declared, port) : protocolOf(d.port),
    };
  });
}

/**
 * App ports that, unnamed, are almost never plain HTTP: a database or broker protocol, or the
 * app's own TLS (webhook servers, kube-rbac-proxy, HTTPS). Parsing them as HTTP breaks the app
 * (issue 14: redis, Cassandra, webhook servers); served as opaque TCP they stay mTLS-authenticated
 * with a per-connection policy decision. A name or appProtocol that says HTTP wins over the list.
 */
export const WELL_KNOWN_OPAQUE_PORTS: ReadonlySet<number> = new Set([
  443, 6443, 8443, 9443, // the app's own TLS: HTTPS, API-server-style and controller-runtime webhook servers
  2181, // ZooKeeper
  3306, // MySQL
  4222, // NATS
  5432, // PostgreSQL
  5672, // AMQP (RabbitMQ)
  6379, // Redis
  7000, 7001, 9042, // Cassandra (inter-node, TLS inter-node, CQL)
  9092, // Kafka
  11211, // memcached
  27017, // MongoDB
]);

/**
 * appProtocol first (the field Kubernetes made for this), then the port name, both read as
 * Istio reads Service ports (`grpc`, `grpc-web`, `http2`, `https`, `tls-…`, `tcp-db`, `redis`,
 * `mysql`, `mongo`…; src/data-plane/proxy/detect/port-protocol.ts); a port neither names is
 * `tcp` when it is a well-known non-HTTP port, else HTTP (HTTP/1.1 and h2c).
 */
function protocolOf(p: ContainerPort): PortProtocol {
  const decision = protocolFromServicePort({ port: p.containerPort, ...(p.name ? { name: p.name } : {}), ...(p.appProtocol ? { appProtocol: p.appProtocol } : {}) }, NO_SERVER_FIRST);
  return fromDecision(decision, p.containerPort);
}

/** A protocol decision (port-protocol.ts) as the inbound port protocol the sidecar serves. */
function fromDecision(decision: PortProtocolDecision, port: number): PortProtocol {
  switch (decision) {
    case 'grpc':
    case 'h2c':
      // The app speaks HTTP/2 on loopback: every stream goes to it as HTTP/2.
      return 'grpc';
    case 'http':
      return 'http';
    case 'tls':
    case 'tcp':
    case 'server-first':
      return 'tcp';
    case 'detect':
      return WELL_KNOWN_OPAQUE_PORTS.has(port) ? 'tcp' : 'http';
  }
}

/** Inbound, a server-first protocol is opaque like any other TCP: the port number alone decides nothing more here. */
const NO_SERVER_FIRST: ReadonlySet<number> = new Set();

/** `8080:15100/http,9090:15101/grpc`: listen ports written out, so sidecar and iptables agree without counting. */
export function formatInboundPorts(ports: readonly InboundPortPlan[]): string {
  return ports.map((p) => `${p.appPort}:${p.listenPort}/${p.protocol}`).join(',');
}
