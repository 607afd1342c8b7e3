import * as tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OutboundProxy } from '../../../src/data-plane/proxy/outbound/outbound-proxy.ts';
import { resolveProxySettings } from '../../../src/data-plane/proxy/config.ts';
import { frontendClient } from '../../unit/policy/frontend-client.ts';
import type { ClientDecision } from '../../../src/data-plane/policy/client-policy.ts';
import type { Resolution } from '../../../src/data-plane/discovery/resolution.ts';
import type { OriginalDestination } from '../../../src/data-plane/proxy/original-dst/original-dst.ts';
import { IDS, meshTlsFor } from '../proxy/support/mesh-fixture.ts';
import { converse, startEchoApp, startTcpMesh, type EchoApp, type TcpMesh } from '../proxy-tcp/support.ts';
import { recordingClientPolicy } from './recording-client-policy.ts';

/**
 * Issue 16 item 1 — the client policy on transparently intercepted TLS and opaque TCP, decided
 * once per connection with discovery's facts: a `service` entry matching discovery's Service, a
 * `host` entry matching the SNI of the app's own TLS, and refusals that close the connection
 * before the destination is dialled, counted as MESHLET_DENIED. Real sockets and mTLS (a real
 * OpaqueTcpProxy with the orders SVID in front of an echo app); the stand-ins are those of
 * test/integration/proxy-tcp/transparent-discovery.test.ts: the original destination (no
 * iptables outside the e2e suite) and discovery's answer.
 */
let mesh: TcpMesh;
let plainApp: EchoApp;
let outbound: OutboundProxy;
let port: number;
const refused: string[] = [];
const decisions: ClientDecision[] = [];
let dst: OriginalDestination;
let answer: Resolution;

beforeAll(async () => {
  mesh = await startTcpMesh();
  plainApp = await startEchoApp();
  const rules = frontendClient(`        - { name: orders-db, service: orders-db, namespace: shop }
        - { name: partner-api, host: "*.partner.example", ports: [${plainApp.port}] }
`);
  outbound = new OutboundProxy({
    tls: meshTlsFor(mesh.pki.svids.frontend),
    destinations: { mesh: [] },
    listenPort: 0,
    settings: resolveProxySettings({ timeouts: { protocolDetectMs: 200 } }),
    transparent: { passthrough: 'allow', discovery: { resolve: () => answer }, originalDestination: () => dst },
    tcpObserver: { refused: (_d, code) => refused.push(code) },
    clientPolicy: recordingClientPolicy(() => rules, decisions),
  });
  await outbound.start();
  port = outbound.boundPort();
});
afterAll(async () => {
  await outbound?.drain();
  await mesh?.close();
  plainApp?.server.close();
});

const payload = Buffer.from([0x00, 0x01, 0xfe, 0xff, 0x42]);
const meshed = (service: string): Resolution => ({ kind: 'meshed', identities: [IDS.orders], protocol: 'tcp', endpoints: [], endpointsTruncated: false, service, reason: '' });

/** A TLS ClientHello with `servername` as SNI; resolves when the connection is over (the echo app cannot finish a handshake). */
function clientHello(servername: string): Promise<void> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false });
    s.on('error', () => undefined);
    s.on('close', () => resolve());
    setTimeout(() => s.destroy(), 1_000).unref();
  });
}

describe('opaque TCP to a meshed destination, decided by its Service', () => {
  it('the Service the entry names: inside mTLS to the destination, echoed', async () => {
    dst = { address: '127.0.0.1', port: mesh.inboundPort, family: 4 };
    answer = meshed('orders-db.shop');
    const r = await converse(port, payload);
    expect(r.received.equals(payload)).toBe(true);
    expect(decisions.at(-1)).toMatchObject({ decision: 'allow', route: 'orders-db', client: 'frontend' });
  });

  it('another Service behind the same identity: closed before the destination is dialled, MESHLET_DENIED', async () => {
    dst = { address: '127.0.0.1', port: mesh.inboundPort, family: 4 };
    answer = meshed('billing.shop');
    const before = mesh.app.accepted;
    const r = await converse(port, payload);
    expect(r.received.length).toBe(0);
    expect(mesh.app.accepted).toBe(before);
    expect(refused.at(-1)).toBe('MESHLET_DENIED');
    expect(decisions.at(-1)).toMatchObject({ decision: 'deny', code: 'no-destination-matched', reason: `destination 127.0.0.1:${mesh.inboundPort} (${IDS.orders}) is not among client "frontend"'s destinations; default is deny` });
  });
});

describe("the app's own TLS to the outside, decided by its SNI", () => {
  beforeAll(() => {
    answer = { kind: 'external', externalName: '', reason: 'outside' };
  });

  it('an SNI under *.partner.example on the listed port: allowed, and the NAME is dialled, not the address the app chose (sni-spoofing.test.ts)', async () => {
    dst = { address: '127.0.0.1', port: plainApp.port, family: 4 };
    const before = plainApp.accepted;
    await clientHello('API.Partner.Example');
    expect(decisions.at(-1)).toMatchObject({ decision: 'allow', route: 'partner-api' });
    // api.partner.example does not resolve here: the connection fails upstream, and the original destination is never dialled.
    expect(refused.at(-1)).toBe('MESHLET_UPSTREAM_CONNECT_FAILED');
    expect(plainApp.accepted).toBe(before);
  });

  it('another SNI: closed, never dialled, MESHLET_DENIED; plain TCP (no SNI) to the same address too', async () => {
    dst = { address: '127.0.0.1', port: plainApp.port, family: 4 };
    const before = plainApp.accepted;
    await clientHello('evil.example');
    expect(refused.at(-1)).toBe('MESHLET_DENIED');
    expect(decisions.at(-1)).toMatchObject({ decision: 'deny', reason: `destination evil.example:${plainApp.port} is not among client "frontend"'s destinations; default is deny` });
    const r = await converse(port, payload);
    expect(r.received.length).toBe(0);
    expect(plainApp.accepted).toBe(before);
    expect(decisions.at(-1)).toMatchObject({ decision: 'deny', reason: `destination 127.0.0.1:${plainApp.port} is not among client "frontend"'s destinations; default is deny` });
  });
});
