// A port's protocol without its bytes: Istio's Service conventions (appProtocol, then the port
// name's prefix), the default server-first ports, and the two annotation parsers.
import { describe, expect, it } from 'vitest';
import { FieldError } from '../../../../src/common/config/env.ts';
import {
  parsePortProtocols,
  parseServerFirstPorts,
  protocolFromServicePort,
  SERVER_FIRST_PORTS,
  type PortProtocolDecision,
  type ServicePortLike,
} from '../../../../src/data-plane/proxy/detect/port-protocol.ts';

describe('protocolFromServicePort (Istio conventions)', () => {
  it.each<[ServicePortLike, PortProtocolDecision]>([
    // the port name: <protocol>[-<suffix>]
    [{ name: 'http', port: 80 }, 'http'],
    [{ name: 'http-web', port: 8080 }, 'http'],
    [{ name: 'HTTP-Web', port: 8080 }, 'http'],
    [{ name: 'http2', port: 8080 }, 'h2c'],
    [{ name: 'http2-api', port: 8080 }, 'h2c'],
    [{ name: 'http_proxy', port: 3128 }, 'http'],
    [{ name: 'https', port: 443 }, 'tls'],
    [{ name: 'https-admin', port: 8443 }, 'tls'],
    [{ name: 'tls', port: 443 }, 'tls'],
    [{ name: 'tls-passthrough', port: 9443 }, 'tls'],
    [{ name: 'grpc', port: 9090 }, 'grpc'],
    [{ name: 'grpc-orders', port: 9090 }, 'grpc'],
    [{ name: 'grpc-web', port: 8080 }, 'http'],
    [{ name: 'grpc-web-ui', port: 8080 }, 'http'],
    // Istio matches "grpc-web" as a plain prefix, before the '-' split: kept as Istio has it.
    [{ name: 'grpc-webfoo', port: 8080 }, 'http'],
    [{ name: 'GRPC-Web', port: 8080 }, 'http'],
    [{ name: 'tcp', port: 5432 }, 'tcp'],
    [{ name: 'tcp-postgres', port: 5432 }, 'tcp'],
    [{ name: 'redis', port: 6379 }, 'tcp'],
    [{ name: 'redis-primary', port: 6379 }, 'tcp'],
    [{ name: 'mongo', port: 27017 }, 'tcp'],
    [{ name: 'mongo', port: 27018 }, 'tcp'],
    [{ name: 'mysql', port: 3306 }, 'server-first'],
    [{ name: 'mysql-replica', port: 13306 }, 'server-first'],
    [{ name: 'udp-dns', port: 5353 }, 'tcp'],
    // not a prefix followed by '-': unknown, so detected (Istio's IST0118 example)
    [{ name: 'httpforecast', port: 8000 }, 'detect'],
    [{ name: 'foo-http', port: 8000 }, 'detect'],
    [{ name: 'web', port: 80 }, 'detect'],
    [{ name: 'h2c', port: 8080 }, 'detect'], // not an Istio name: the h2c preface is detected on the bytes anyway
    [{ name: 'grpcweb', port: 8080 }, 'detect'],
    [{ name: '', port: 8080 }, 'detect'],
    [{ port: 8080 }, 'detect'],
    [{ name: '-http', port: 8080 }, 'detect'],
    // appProtocol wins over the name
    [{ name: 'tcp', appProtocol: 'http', port: 80 }, 'http'],
    [{ name: 'http', appProtocol: 'tcp', port: 80 }, 'tcp'],
    [{ name: 'web', appProtocol: 'grpc', port: 9090 }, 'grpc'],
    [{ name: 'database', appProtocol: 'mysql', port: 3306 }, 'server-first'],
    [{ name: 'http', appProtocol: 'HTTPS', port: 443 }, 'tls'],
    [{ name: 'web', appProtocol: 'http2', port: 80 }, 'h2c'],
    [{ name: 'web', appProtocol: 'grpc-web', port: 80 }, 'http'],
    // appProtocol replaces the name even when Istio cannot read it: an unknown appProtocol is detected
    [{ name: 'http', appProtocol: 'example.com/custom', port: 80 }, 'detect'],
    [{ name: 'http', appProtocol: 'example.com/custom', port: 3306 }, 'server-first'],
    // "" is not a value Kubernetes accepts: read as unset, the name decides
    [{ name: 'http', appProtocol: '', port: 80 }, 'http'],
    // Kubernetes-defined appProtocol values (KEP-3726), exact case
    [{ name: 'web', appProtocol: 'kubernetes.io/h2c', port: 80 }, 'h2c'],
    [{ name: 'web', appProtocol: 'kubernetes.io/ws', port: 80 }, 'http'],
    [{ name: 'web', appProtocol: 'kubernetes.io/wss', port: 443 }, 'tls'],
    [{ name: 'tcp', appProtocol: 'kubernetes.io/h2c', port: 3306 }, 'h2c'],
    [{ name: 'web', appProtocol: 'Kubernetes.io/H2C', port: 80 }, 'detect'],
    // Istio's well-known ports, and meshlet's other server-first ports, when nothing is declared
    [{ name: 'smtp', port: 25 }, 'server-first'],
    [{ port: 53 }, 'server-first'],
    [{ name: 'db', port: 3306 }, 'server-first'],
    [{ port: 27017 }, 'server-first'],
    [{ name: 'ftp', port: 21 }, 'server-first'],
    [{ port: 110 }, 'server-first'],
    [{ port: 143 }, 'server-first'],
    [{ name: 'submission', port: 587 }, 'server-first'],
    [{ name: 'client', port: 4222 }, 'server-first'],
    // a declared protocol beats the port list, as in Istio
    [{ name: 'http', port: 25 }, 'http'],
    [{ name: 'tcp', port: 3306 }, 'tcp'],
    [{ name: 'https', port: 4222 }, 'tls'],
  ])('%j -> %s', (servicePort, expected) => {
    expect(protocolFromServicePort(servicePort)).toBe(expected);
  });

  it('takes the pod\'s server-first list in place of the default one', () => {
    expect(protocolFromServicePort({ port: 3306 }, new Set())).toBe('detect');
    expect(protocolFromServicePort({ port: 7000 }, new Set([7000]))).toBe('server-first');
    expect(protocolFromServicePort({ port: 25 }, new Set([7000]))).toBe('detect');
    expect(protocolFromServicePort({ name: 'mysql', port: 3306 }, new Set())).toBe('server-first');
  });

  it('holds Istio\'s four well-known ports, and the documented others', () => {
    expect([...SERVER_FIRST_PORTS].sort((a, b) => a - b)).toEqual([21, 25, 53, 110, 143, 587, 3306, 4222, 27017]);
  });
});

describe(`parseServerFirstPorts (meshlet.io/server-first-ports)`, () => {
  it.each<[string, number[]]>([
    ['', []],
    ['   ', []],
    ['3306', [3306]],
    ['25,3306,4222', [25, 3306, 4222]],
    [' 25 , 3306 ', [25, 3306]],
    ['1,65535', [1, 65535]],
  ])('%j -> %j', (raw, expected) => {
    expect([...parseServerFirstPorts(raw)]).toEqual(expected);
  });

  it.each<[string, string]>([
    ['25,,3306', 'must be a comma-separated list of ports (1-65535) or "": entry 2 is empty (a stray comma?)'],
    ['25,', 'entry 2 is empty (a stray comma?)'],
    ['smtp', 'entry 1 "smtp": not a port number'],
    ['0', 'entry 1 "0": port 0 is outside 1-65535'],
    ['65536', 'entry 1 "65536": port 65536 is outside 1-65535'],
    ['-1', 'entry 1 "-1": not a port number'],
    ['25 587', 'entry 1 "25 587": not a port number'],
    ['4000-5000', 'entry 1 "4000-5000": not a port number'],
    ['3306,3306', 'entry 2 "3306": port 3306 is listed twice'],
    ['1e3', 'entry 1 "1e3": not a port number'],
    ['25;3306', 'entry 1 "25;3306": not a port number'],
  ])('refuses %j', (raw, message) => {
    expect(() => parseServerFirstPorts(raw)).toThrow(FieldError);
    expect(() => parseServerFirstPorts(raw)).toThrow(message);
  });

  it('reports every bad entry at once', () => {
    expect(() => parseServerFirstPorts('x,25,,70000,25')).toThrow(
      'must be a comma-separated list of ports (1-65535) or "": entry 1 "x": not a port number; entry 3 is empty (a stray comma?); entry 4 "70000": port 70000 is outside 1-65535; entry 5 "25": port 25 is listed twice',
    );
  });
});

describe('parsePortProtocols (meshlet.io/port-protocols)', () => {
  it.each<[string, Array<[number, PortProtocolDecision]>]>([
    ['', []],
    [' ', []],
    ['6379=tcp', [[6379, 'tcp']]],
    [
      '6379=tcp,8443=tls,9090=grpc',
      [
        [6379, 'tcp'],
        [8443, 'tls'],
        [9090, 'grpc'],
      ],
    ],
    [
      ' 8080 = http , 8081=h2c,3306=server-first, 25=detect',
      [
        [8080, 'http'],
        [8081, 'h2c'],
        [3306, 'server-first'],
        [25, 'detect'],
      ],
    ],
  ])('%j', (raw, expected) => {
    expect([...parsePortProtocols(raw)]).toEqual(expected);
  });

  it.each<[string, string]>([
    ['6379', 'must be a comma-separated list of PORT=PROTOCOL or "": entry 1 "6379": must be PORT=PROTOCOL'],
    ['6379:tcp', 'entry 1 "6379:tcp": must be PORT=PROTOCOL'],
    ['=tcp', 'entry 1 "=tcp": the port is missing'],
    ['6379=', 'entry 1 "6379=": the protocol is missing'],
    ['redis=tcp', 'entry 1 "redis=tcp": not a port number'],
    ['0=tcp', 'entry 1 "0=tcp": port 0 is outside 1-65535'],
    ['70000=tcp', 'entry 1 "70000=tcp": port 70000 is outside 1-65535'],
    ['6379=udp', 'entry 1 "6379=udp": unknown protocol "udp" (one of http, h2c, grpc, tls, tcp, server-first, detect)'],
    ['6379=TCP', 'entry 1 "6379=TCP": unknown protocol "TCP"'],
    ['6379=https', 'entry 1 "6379=https": unknown protocol "https"'],
    ['x=y', 'entry 1 "x=y": not a port number, unknown protocol "y"'],
    ['6379=tcp=tls', 'entry 1 "6379=tcp=tls": unknown protocol "tcp=tls"'],
    ['6379=tcp,,80=http', 'entry 2 is empty (a stray comma?)'],
    ['6379=tcp,6379=tls', 'entry 2 "6379=tls": port 6379 is given twice'],
  ])('refuses %j', (raw, message) => {
    expect(() => parsePortProtocols(raw)).toThrow(FieldError);
    expect(() => parsePortProtocols(raw)).toThrow(message);
  });

  it('reports every bad entry at once', () => {
    expect(() => parsePortProtocols('80=http,9090,0=tls,80=tcp')).toThrow(
      'must be a comma-separated list of PORT=PROTOCOL or "": entry 2 "9090": must be PORT=PROTOCOL; entry 3 "0=tls": port 0 is outside 1-65535; entry 4 "80=tcp": port 80 is given twice',
    );
  });
});
