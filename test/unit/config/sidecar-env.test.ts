import { describe, expect, it } from 'vitest';
import { readSidecarConfig, SIDECAR_ENV } from '../../../src/data-plane/sidecar/sidecar-env.ts';
import { ConfigError } from '../../../src/common/config/env.ts';

const minimal = { MESHLET_NAMESPACE: 'shop', MESHLET_SERVICE_ACCOUNT: 'orders' };

describe('sidecar configuration from the environment', () => {
  it('applies documented defaults and derives the SPIFFE ID', () => {
    const c = readSidecarConfig(minimal);
    expect(c.spiffeId).toBe('spiffe://cluster.local/ns/shop/sa/orders');
    expect(c.defaultPolicy).toBe('deny');
    expect(c.outboundPort).toBe(15001);
    expect(c.adminPort).toBe(15020);
    expect(c.acceptedTrustDomains).toEqual(['cluster.local']);
    expect(c.drainTimeoutMs).toBe(20_000);
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('assigns listen ports from 15100 unless given, and marks permissive ports', () => {
    const c = readSidecarConfig({ ...minimal, MESHLET_INBOUND_PORTS: '8080/http,9090:15200/grpc,5432/tcp', MESHLET_PERMISSIVE_PORTS: '8080' });
    expect(c.inboundPorts).toEqual([
      { appPort: 8080, listenPort: 15100, protocol: 'http', permissive: true },
      { appPort: 9090, listenPort: 15200, protocol: 'grpc', permissive: false },
      { appPort: 5432, listenPort: 15102, protocol: 'tcp', permissive: false },
    ]);
  });

  it('reports every bad variable at once', () => {
    let err: unknown;
    try {
      readSidecarConfig({
        MESHLET_SERVICE_ACCOUNT: 'Orders!',
        MESHLET_ADMIN_PORT: '70000',
        MESHLET_DEFAULT_POLICY: 'allow-all',
        MESHLET_IDLE_TIMEOUT: 'soon',
        MESHLET_INBOUND_PORTS: '8080/udp',
        MESHLET_DESTINATION_IDENTITIES: 'orders:80=spiffe://Bad/x',
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const vars = (err as ConfigError).problems.map((p) => p.variable).sort();
    expect(vars).toEqual(
      ['MESHLET_ADMIN_PORT', 'MESHLET_DEFAULT_POLICY', 'MESHLET_DESTINATION_IDENTITIES', 'MESHLET_IDLE_TIMEOUT', 'MESHLET_INBOUND_PORTS', 'MESHLET_NAMESPACE', 'MESHLET_SERVICE_ACCOUNT'].sort(),
    );
    expect((err as ConfigError).code).toBe('MESHLET_CONFIG_INVALID');
    expect((err as ConfigError).message).toContain('MESHLET_DEFAULT_POLICY="allow-all": must be one of deny, all-authenticated, audit');
  });

  it('refuses ports used twice and permissive ports that are not declared', () => {
    expect(() => readSidecarConfig({ ...minimal, MESHLET_ADMIN_PORT: '15001' })).toThrow(/port 15001 is used twice/);
    expect(() => readSidecarConfig({ ...minimal, MESHLET_INBOUND_PORTS: '8080', MESHLET_PERMISSIVE_PORTS: '9090' })).toThrow(/port 9090 is not one of MESHLET_INBOUND_PORTS/);
  });

  it('parses plaintext destinations and expected identities', () => {
    const c = readSidecarConfig({ ...minimal, MESHLET_PLAINTEXT_DESTINATIONS: '10.0.0.0/8:443,api.example.com', MESHLET_DESTINATION_IDENTITIES: 'orders.shop:80=spiffe://cluster.local/ns/shop/sa/orders' });
    expect(c.plaintextDestinations).toEqual([{ cidr: '10.0.0.0/8', port: 443 }, { host: 'api.example.com' }]);
    expect(c.destinationIdentities.get('orders.shop:80')).toBe('spiffe://cluster.local/ns/shop/sa/orders');
    const d = readSidecarConfig({ ...minimal, MESHLET_DESTINATION_ADDRESSES: 'Orders:8080=127.0.0.1:15100' });
    expect(d.destinationAddresses.get('orders:8080')).toEqual({ host: '127.0.0.1', port: 15100 });
    expect(() => readSidecarConfig({ ...minimal, MESHLET_DESTINATION_ADDRESSES: 'orders:8080' })).toThrow(/HOST:PORT=ADDRESS:PORT/);
  });

  it('parses opaque outbound TCP mappings and the request-metrics switch', () => {
    const c = readSidecarConfig({ ...minimal, MESHLET_OUTBOUND_TCP: '15400=ledger.shop:5432@spiffe://cluster.local/ns/shop/sa/ledger,15401=cache:6379', MESHLET_REQUEST_METRICS: 'false' });
    expect(c.outboundTcp).toEqual([
      { listenPort: 15400, host: 'ledger.shop', port: 5432, spiffeId: 'spiffe://cluster.local/ns/shop/sa/ledger' },
      { listenPort: 15401, host: 'cache', port: 6379 },
    ]);
    expect(c.requestMetrics).toBe(false);
    expect(readSidecarConfig(minimal).requestMetrics).toBe(true);
    expect(() => readSidecarConfig({ ...minimal, MESHLET_OUTBOUND_TCP: '15400=ledger' })).toThrow(/LISTEN_PORT=HOST:PORT/);
    expect(() => readSidecarConfig({ ...minimal, MESHLET_OUTBOUND_TCP: '15001=ledger:5432' })).toThrow(/port 15001 is used twice/);
  });

  it('names the variable, not the pod annotation, when MESHLET_SERVER_FIRST_PORTS is malformed', () => {
    let message = '';
    try {
      readSidecarConfig({ ...minimal, MESHLET_SERVER_FIRST_PORTS: '25,,x' });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain('MESHLET_SERVER_FIRST_PORTS="25,,x": must be a comma-separated list of ports (1-65535) or "": entry 2 is empty (a stray comma?); entry 3 "x": not a port number');
    expect(message).not.toContain('meshlet.io/');
  });

  it('documents every variable with a description', () => {
    for (const v of Object.values(SIDECAR_ENV)) expect(v.description.length).toBeGreaterThan(10);
  });
});
