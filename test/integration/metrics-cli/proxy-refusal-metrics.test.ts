import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as http from 'node:http';
import type * as tls from 'node:tls';
import { AdminServer } from '../../../src/admin/admin-server.ts';
import { SidecarMetrics } from '../../../src/metrics/sidecar-metrics.ts';
import { parseExposition, type Sample } from '../../../src/metrics/parse-exposition.ts';
import { InboundProxy } from '../../../src/proxy/inbound/inbound-proxy.ts';
import { closeServer, createMeshPki, listen, meshTlsFor } from '../proxy/support/mesh-fixture.ts';
import { rawExchange } from '../proxy/support/raw-exchange.ts';
import { DenyByPathAuthorizer, strictPathNormalizer } from '../proxy/support/stand-in-policy.ts';
// The real inbound proxy, its ProxyObserver wired to SidecarMetrics as the sidecar wires it,
// and the real admin server: refusals and handshake failures are scraped with exact values.
describe('proxy refusals and handshake failures on /metrics', () => {
  let metrics: SidecarMetrics;
  let inbound: InboundProxy;
  let admin: AdminServer;
  let app: http.Server;
  let inboundPort: number;
  let adminBase: string;
  let clientTls: tls.ConnectionOptions;

  beforeAll(async () => {
    const pki = await createMeshPki();
    metrics = new SidecarMetrics({ processMetrics: false });
    app = http.createServer((_req, res) => res.end('ok'));
    const appPort = await listen(app);
    inbound = new InboundProxy({
      tls: meshTlsFor(pki.svids.orders),
      authorizer: new DenyByPathAuthorizer(['/admin']),
      normalizer: strictPathNormalizer,
      ports: [{ listenPort: 0, appPort, protocol: 'http1' }],
      listenHost: '127.0.0.1',
      observer: metrics.observer,
    });
    await inbound.start();
    inboundPort = inbound.boundPorts()[0]!.listenPort;
    admin = new AdminServer({ readiness: () => ({ ready: true, checks: {} }), registry: metrics.registry, connections: () => inbound.registry.list() });
    adminBase = `http://127.0.0.1:${(await admin.listen(0, '127.0.0.1')).port}`;
    const f = pki.svids.frontend;
    clientTls = { cert: f.certChainPem, key: f.privateKeyPem, ca: f.bundlePem, minVersion: 'TLSv1.3', checkServerIdentity: () => undefined };
  });

  afterAll(async () => {
    await admin?.close();
    await inbound?.drain();
    if (app) await closeServer(app);
  });

  async function samples(): Promise<Sample[]> {
    return [...parseExposition(await (await fetch(`${adminBase}/metrics`)).text()).samples];
  }
  const value = (s: Sample[], name: string, labels: Record<string, string>) =>
    s.find((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v))?.value;

  it('counts a smuggling attempt, a denial and a plaintext client on the STRICT port', async () => {
    const smuggle = await rawExchange(inboundPort, 'POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n', clientTls);
    expect(smuggle.response).toMatch(/^HTTP\/1\.1 400 /);
    const denied = await rawExchange(inboundPort, 'GET /admin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', clientTls);
    expect(denied.response).toMatch(/^HTTP\/1\.1 403 /);
    const plain = await rawExchange(inboundPort, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', undefined, 2_000);
    expect(plain.response).not.toMatch(/^HTTP\/1\.1 200/);

    // The plaintext client's failure is reported when the TLS server gives up on it: wait for it.
    const deadline = Date.now() + 15_000;
    let s = await samples();
    while (value(s, 'meshlet_tls_handshake_failures_total', { direction: 'inbound', reason: 'plaintext_on_strict' }) !== 1 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      s = await samples();
    }
    expect(value(s, 'meshlet_tls_handshake_failures_total', { direction: 'inbound', reason: 'plaintext_on_strict' })).toBe(1);
    expect(value(s, 'meshlet_proxy_refusals_total', { direction: 'inbound', code: 'MESHLET_BAD_REQUEST' })).toBe(1);
    expect(value(s, 'meshlet_proxy_refusals_total', { direction: 'inbound', code: 'MESHLET_DENIED' })).toBe(1);
    expect(value(s, 'meshlet_proxy_refusals_total', { direction: 'outbound', code: 'MESHLET_BAD_REQUEST' })).toBe(0);
    // Nothing else failed a handshake.
    const otherFailures = s.filter((x) => x.name === 'meshlet_tls_handshake_failures_total' && x.labels.reason !== 'plaintext_on_strict').map((x) => x.value);
    expect(otherFailures.every((v) => v === 0)).toBe(true);
  });
});
