// Issue 11, item 1: unauthenticated connection exhaustion — a flood of idle connections (3,000
// silent TCP connections cost ~70 MB; at the descriptor limit nobody got an answer). Every
// listener has a connection cap: connections past it are closed at accept (before any byte is
// read, before a TLS handshake costs CPU) and counted as
// meshlet_listener_refused_connections_total{reason="limit"}, while a client whose connection
// was already established keeps being served on it.
//
// The cap is set small (5); the flood is a handful of sockets, never thousands.
import * as http from 'node:http';
import * as https from 'node:https';
import type * as net from 'node:net';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { AdminServer } from '../../../src/data-plane/admin/admin-server.ts';
import { ListenerMetrics } from '../../../src/data-plane/metrics/listener-metrics.ts';
import { ConnectionGuard, type ListenerName } from '../../../src/common/net/connection-guard.ts';
import { resolveProxySettings } from '../../../src/data-plane/proxy/config.ts';
import { InboundProxy } from '../../../src/data-plane/proxy/inbound/inbound-proxy.ts';
import { OutboundProxy } from '../../../src/data-plane/proxy/outbound/outbound-proxy.ts';
import type { RequestAuthorizer } from '../../../src/data-plane/proxy/request-authorizer.ts';
import { createWebhookServer } from '../../../src/control-plane/injector/webhook-server.ts';
import { CertifyError } from '../../../src/control-plane/identity-service/errors.ts';
import type { TokenAuthenticator } from '../../../src/control-plane/identity-service/token/authenticator.ts';
import { closeServer, createMeshPki, IDS, listen, meshTlsFor } from '../proxy/support/mesh-fixture.ts';
import { strictPathNormalizer } from '../proxy/support/stand-in-policy.ts';
import { servingCertificate, WEBHOOK_DNS_NAME } from '../injector/webhook-fixture.ts';
import { certify, makeCa, rawClient, serviceCode, startIdentityService } from '../identity-service/support.ts';
import { attack, eventually, refusedCount, type Attack } from './support/half-open.ts';

const CAP = 5;
/** Long setup timeouts: the flood's silent connections must stay open for the whole test. */
const settings = resolveProxySettings({ timeouts: { tlsHandshakeMs: 60_000, requestHeadersMs: 60_000 } });
const allowAll: RequestAuthorizer = { authorize: () => ({ decision: 'allow', route: 'any', reason: 'every caller' }) };

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function capped(listener: ListenerName): { registry: Registry; guard: ConnectionGuard; metrics: ListenerMetrics } {
  const registry = new Registry();
  const metrics = new ListenerMetrics(registry);
  return { registry, metrics, guard: new ConnectionGuard({ listener, maxConnections: CAP, observer: metrics }) };
}

/**
 * With `established` connections already open on the listener, fills it up to the cap with
 * silent connections, then sends `extra` more: those are closed without a byte, and counted.
 */
async function flood(port: number, registry: Registry, listener: ListenerName, established: number, extra = 3): Promise<Attack[]> {
  const held: Attack[] = [];
  for (let i = established; i < CAP; i++) held.push(await attack(port));
  cleanups.push(() => held.forEach((a) => a.socket.destroy()));
  // Held connections are accepted (the server counts them) before the flood goes on.
  await eventually(async () => (await openConnections(registry, listener)) === CAP, `${listener} to hold ${CAP} connections`);
  const refused: Attack[] = [];
  for (let i = 0; i < extra; i++) refused.push(await attack(port));
  cleanups.push(() => refused.forEach((a) => a.socket.destroy()));
  await eventually(() => refused.every((a) => a.isClosed()), 'the connections past the cap to be closed');
  for (const a of refused) expect(a.received().length).toBe(0);
  await eventually(async () => (await refusedCount(registry, listener, 'limit')) === extra, 'the refusals to be counted');
  expect(held.every((a) => !a.isClosed())).toBe(true);
  return held;
}

async function openConnections(registry: Registry, listener: string): Promise<number> {
  const { values } = await registry.getSingleMetric('meshlet_listener_open_connections')!.get();
  return values.find((v) => v.labels.listener === listener)?.value ?? 0;
}

/** GET over a keep-alive agent with one socket: the second call reuses the first one's connection. */
function get(agent: http.Agent, port: number, path: string, extra: https.RequestOptions = {}): Promise<{ status: number; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const send = extra.ca !== undefined ? https.request : http.request;
    const req = send({ host: '127.0.0.1', port, path, agent, headers: { host: 'orders.shop.svc.cluster.local:8080' }, ...extra }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('connection flood: past the cap connections are refused at accept and counted; an established client keeps working', () => {
  it('on a STRICT inbound port (mTLS client with a real SVID)', async () => {
    const pki = await createMeshPki();
    const app = http.createServer((_req, res) => res.end('app'));
    const appPort = await listen(app);
    const { registry, guard } = capped('inbound');
    const inbound = new InboundProxy({ tls: meshTlsFor(pki.svids.orders), authorizer: allowAll, normalizer: strictPathNormalizer, ports: [{ listenPort: 0, appPort, protocol: 'http' }], listenHost: '127.0.0.1', settings, guard });
    await inbound.start();
    cleanups.push(() => closeServer(app), () => inbound.drain());
    const port = inbound.boundPorts()[0]!.listenPort;

    const client = meshTlsFor(pki.svids.frontend);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    (agent as unknown as { createConnection: () => net.Socket }).createConnection = () => client.connect({ host: '127.0.0.1', port }, { spiffeId: IDS.orders }, { ALPNProtocols: ['http/1.1'] });
    cleanups.push(() => agent.destroy());
    expect(await get(agent, port, '/before')).toEqual({ status: 200, reused: false });

    await flood(port, registry, 'inbound', 1);
    expect(await get(agent, port, '/during')).toEqual({ status: 200, reused: true });
  });

  it('on a PERMISSIVE inbound port (plaintext keep-alive client)', async () => {
    const pki = await createMeshPki();
    const app = http.createServer((_req, res) => res.end('app'));
    const appPort = await listen(app);
    const { registry, guard } = capped('inbound');
    const inbound = new InboundProxy({ tls: meshTlsFor(pki.svids.orders), authorizer: allowAll, normalizer: strictPathNormalizer, ports: [{ listenPort: 0, appPort, protocol: 'http', permissive: true }], listenHost: '127.0.0.1', settings, guard });
    await inbound.start();
    cleanups.push(() => closeServer(app), () => inbound.drain());
    const port = inbound.boundPorts()[0]!.listenPort;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    cleanups.push(() => agent.destroy());
    expect(await get(agent, port, '/before')).toEqual({ status: 200, reused: false });

    await flood(port, registry, 'inbound', 1);
    expect(await get(agent, port, '/during')).toEqual({ status: 200, reused: true });
  });

  it('on the outbound listener (the app as a keep-alive client, through the mesh)', async () => {
    const pki = await createMeshPki();
    const app = http.createServer((_req, res) => res.end('app'));
    const appPort = await listen(app);
    const inbound = new InboundProxy({ tls: meshTlsFor(pki.svids.orders), authorizer: allowAll, normalizer: strictPathNormalizer, ports: [{ listenPort: 0, appPort, protocol: 'http' }], listenHost: '127.0.0.1', settings });
    await inbound.start();
    const { registry, guard } = capped('outbound');
    const outbound = new OutboundProxy({
      tls: meshTlsFor(pki.svids.frontend),
      destinations: { mesh: [{ host: 'orders.shop.svc.cluster.local', port: 8080, address: { host: '127.0.0.1', port: inbound.boundPorts()[0]!.listenPort }, expected: { spiffeId: IDS.orders } }], plaintext: [] },
      listenHost: '127.0.0.1',
      listenPort: 0,
      settings,
      guard,
    });
    await outbound.start();
    cleanups.push(() => closeServer(app), () => inbound.drain(), () => outbound.drain());
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    cleanups.push(() => agent.destroy());
    expect(await get(agent, outbound.boundPort(), '/before')).toEqual({ status: 200, reused: false });

    await flood(outbound.boundPort(), registry, 'outbound', 1);
    expect(await get(agent, outbound.boundPort(), '/during')).toEqual({ status: 200, reused: true });
  });

  it('on the admin port (a Prometheus-like keep-alive scraper)', async () => {
    const { registry, guard } = capped('admin');
    const admin = new AdminServer({ registry, connections: () => [], readiness: () => ({ ready: true, checks: {} }), guard, headersTimeoutMs: 60_000 });
    const { port } = await admin.listen(0, '127.0.0.1');
    cleanups.push(() => admin.close());
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    cleanups.push(() => agent.destroy());
    expect(await get(agent, port, '/live')).toEqual({ status: 200, reused: false });

    await flood(port, registry, 'admin', 1);
    expect(await get(agent, port, '/metrics')).toEqual({ status: 200, reused: true });
  });

  it('on the injector webhook (the API server as a keep-alive HTTPS client)', async () => {
    const { registry, guard } = capped('webhook');
    const { cert, key } = await servingCertificate();
    const server = createWebhookServer({ cert, key, routes: {}, guard });
    const port = await listen(server);
    cleanups.push(() => closeServer(server));
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    cleanups.push(() => agent.destroy());
    const tlsOptions = { ca: cert, servername: WEBHOOK_DNS_NAME };
    expect(await get(agent, port, '/healthz', tlsOptions)).toEqual({ status: 200, reused: false });

    await flood(port, registry, 'webhook', 1);
    expect(await get(agent, port, '/healthz', tlsOptions)).toEqual({ status: 200, reused: true });
  });

  it('on the identity service (a gRPC channel keeps its connection)', async () => {
    const { root, ca } = await makeCa();
    const registry = new Registry();
    const noTokens: TokenAuthenticator = { kind: 'none', authenticate: () => Promise.reject(new CertifyError('IDENTITY_TOKEN_INVALID', 'no token is valid here')) };
    const service = await startIdentityService(ca, noTokens, { connections: { maxConnections: CAP, handshakeTimeoutMs: 60_000, observer: new ListenerMetrics(registry) } });
    cleanups.push(() => service.close());
    const client = rawClient(service.address, root.bundlePem);
    cleanups.push(() => client.close());
    // An answer from the service itself (the request is refused with its code), not UNAVAILABLE from the channel.
    const before = await certify(client, { token: 'x', csr: Buffer.from('x') });
    expect(serviceCode(before)).toMatch(/^IDENTITY_/);

    await flood(service.port, registry, 'identity', 1);
    const during = await certify(client, { token: 'x', csr: Buffer.from('x') });
    expect(serviceCode(during)).toMatch(/^IDENTITY_/);
  });
});
