// Issue 14 item 4: an app port's protocol, as the injector writes it into MESHLET_INBOUND_PORTS.
// Non-HTTP and TLS app ports parsed as HTTP broke the app (redis, Cassandra, webhook servers):
// they are served as opaque TCP — still mTLS with a per-connection policy decision.
import { describe, expect, it } from 'vitest';
import { parsePodAnnotations } from '../../../src/control-plane/injector/patch/annotations.ts';
import { planInboundPorts } from '../../../src/control-plane/injector/patch/inbound-ports.ts';
import type { ContainerPort } from '../../../src/control-plane/injector/patch/pod-shape.ts';

function protocolOf(port: ContainerPort, annotations: Record<string, string> = {}): string {
  const [plan] = planInboundPorts([{ name: 'app', image: 'a:1', ports: [port] }], parsePodAnnotations(annotations));
  return plan!.protocol;
}

describe('inbound port protocol', () => {
  it.each([
    [{ containerPort: 8080 }, 'http'],
    [{ containerPort: 8080, name: 'http' }, 'http'],
    [{ containerPort: 8080, name: 'http-web' }, 'http'],
    [{ containerPort: 9090, name: 'grpc' }, 'grpc'],
    [{ containerPort: 9090, name: 'grpc-api' }, 'grpc'],
    [{ containerPort: 9090, name: 'http2' }, 'grpc'],
    [{ containerPort: 8080, name: 'grpc-web' }, 'http'],
    [{ containerPort: 5000, name: 'tcp-db' }, 'tcp'],
    [{ containerPort: 5000, name: 'tls-peer' }, 'tcp'],
    [{ containerPort: 5000, name: 'https' }, 'tcp'],
    [{ containerPort: 5000, name: 'redis' }, 'tcp'],
    [{ containerPort: 5000, name: 'mysql' }, 'tcp'],
    [{ containerPort: 5000, name: 'mongo' }, 'tcp'],
    [{ containerPort: 5000, appProtocol: 'kubernetes.io/h2c' }, 'grpc'],
    [{ containerPort: 6379, appProtocol: 'http' }, 'http'],
    [{ containerPort: 5000, appProtocol: 'tcp' }, 'tcp'],
    // Unnamed well-known non-HTTP ports.
    [{ containerPort: 6379 }, 'tcp'],
    [{ containerPort: 9042 }, 'tcp'],
    [{ containerPort: 7000 }, 'tcp'],
    [{ containerPort: 8443 }, 'tcp'],
    [{ containerPort: 9443, name: 'webhook-server' }, 'tcp'],
    [{ containerPort: 5432 }, 'tcp'],
    // A name that says HTTP wins over the number.
    [{ containerPort: 8443, name: 'http-alt' }, 'http'],
  ] as [ContainerPort, string][])('%j -> %s', (port, protocol) => {
    expect(protocolOf(port)).toBe(protocol);
  });

  it('meshlet.io/opaque-ports makes any port opaque', () => {
    expect(protocolOf({ containerPort: 8080, name: 'http' }, { 'meshlet.io/opaque-ports': '8080' })).toBe('tcp');
  });
});

describe('meshlet.io/port-protocols', () => {
  it.each([
    ['8080=tcp', { containerPort: 8080, name: 'http' }, 'tcp'],
    ['8443=tls', { containerPort: 8443, name: 'http-alt' }, 'tcp'],
    ['6379=http', { containerPort: 6379 }, 'http'],
    ['9000=grpc', { containerPort: 9000 }, 'grpc'],
    ['9000=h2c', { containerPort: 9000 }, 'grpc'],
    ['6379=detect', { containerPort: 6379 }, 'tcp'],
    ['3307=server-first', { containerPort: 3307 }, 'tcp'],
  ] as [string, ContainerPort, string][])('%s on %j -> %s', (annotation, port, protocol) => {
    expect(protocolOf(port, { 'meshlet.io/port-protocols': annotation })).toBe(protocol);
  });

  it('a port the pod does not mesh is refused, naming the annotation', () => {
    expect(() => protocolOf({ containerPort: 8080 }, { 'meshlet.io/port-protocols': '9999=tcp' })).toThrow(/meshlet\.io\/port-protocols: port 9999/);
  });
});
