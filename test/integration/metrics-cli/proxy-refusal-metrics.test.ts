import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as tls from 'node:tls';
import { readSidecarConfig } from '../../../src/data-plane/sidecar/sidecar-env.ts';
import { createLogger } from '../../../src/common/log/logger.ts';
import { parseExposition, type Sample } from '../../../src/cli/scrape/parse-exposition.ts';
import { Sidecar } from '../../../src/data-plane/sidecar/sidecar.ts';
import { rawExchange } from '../proxy/support/raw-exchange.ts';
import { FRONTEND_ID, meshOfTwo, svidFiles, type MeshOfTwo } from '../sidecar/mesh-of-two.ts';
// The real sidecar (orders' of test/integration/sidecar/mesh-of-two.ts, configured by environment
// only): its inbound proxy, SidecarMetrics and admin port as `meshlet sidecar` wires them.
// Refusals and handshake failures are scraped from its /metrics with exact values. Its policy
// closes /admin to frontend (only ops' operator may call it).
describe('proxy refusals and handshake failures on /metrics', () => {
  let mesh: MeshOfTwo;
  let orders: Sidecar;
  let inboundPort: number;
  let adminBase: string;
  let clientTls: tls.ConnectionOptions;

  beforeAll(async () => {
    mesh = await meshOfTwo();
    orders = new Sidecar(readSidecarConfig(mesh.ordersEnv), { logger: createLogger({ name: 'sidecar', level: 'error' }) });
    await orders.start();
    inboundPort = mesh.ports.ordersInbound;
    adminBase = `http://127.0.0.1:${mesh.ports.ordersAdmin}`;
    const f = await svidFiles(mesh.ca, FRONTEND_ID);
    clientTls = { cert: f['tls.crt'], key: f['tls.key'], ca: f['ca.crt'], minVersion: 'TLSv1.3', checkServerIdentity: () => undefined };
  });

  afterAll(async () => {
    await orders?.stop();
    await mesh?.close();
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
