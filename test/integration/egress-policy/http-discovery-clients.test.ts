import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OutboundProxy } from '../../../src/data-plane/proxy/outbound/outbound-proxy.ts';
import { compileClient, type ClientDecision, type CompiledClient } from '../../../src/data-plane/policy/client-policy.ts';
import { parsePolicy } from '../../../src/data-plane/policy/parse.ts';
import type { Resolution } from '../../../src/data-plane/discovery/resolution.ts';
import { IDS, meshTlsFor, request } from '../proxy/support/mesh-fixture.ts';
import { startMeshPair, type MeshPair } from '../proxy/support/mesh-pair.ts';
import { recordingClientPolicy } from './recording-client-policy.ts';

/**
 * Issue 16 item 1 — HTTP routed by discovery, then decided by the client policy on what
 * discovery said: a `service` entry matches a meshed Service and a mixed one (decided for the
 * Service as a whole, not per endpoint), an identity entry never matches a mixed Service (not
 * meshed as a whole), a `cidr` entry an outside destination after the egress settings allowed it,
 * and a new compiled client (a reload) replaces the verdict cached on the destination. Real
 * sockets and mTLS to a real inbound sidecar with the orders SVID; discovery's answer is the
 * stand-in (as in test/integration/proxy/http-discovery.test.ts).
 */
let mesh: MeshPair;
let plain: http.Server;
let plainPort: number;
let outbound: OutboundProxy;
let port: number;
const answers = new Map<number, Resolution>();
const decisions: ClientDecision[] = [];
let rules: CompiledClient | null;

function client(destinations: string): CompiledClient | null {
  const r = parsePolicy(`apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
spec:
  clients:
    - name: frontend
      selector: { serviceAccount: frontend }
      destinations:
${destinations}`);
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return compileClient(r.policy, { namespace: 'shop', serviceAccount: 'frontend' }, 'allow');
}

beforeAll(async () => {
  mesh = await startMeshPair({ authorizer: { authorize: () => ({ decision: 'allow', route: 'all', reason: 'test' }) } });
  plain = http.createServer((req, res) => res.end(`plain saw ${req.url}`));
  await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
  plainPort = (plain.address() as AddressInfo).port;
  rules = client(`        - { name: orders, service: orders }
        - { name: outside, cidr: 127.0.0.0/8, ports: [${plainPort}] }
        - { name: by-identity, spiffeId: ${IDS.orders} }
`);
  outbound = new OutboundProxy({
    tls: meshTlsFor(mesh.pki.svids.frontend),
    destinations: { mesh: [] },
    listenPort: 0,
    transparent: { passthrough: 'allow', discovery: { resolve: ({ port: p }) => answers.get(p) ?? { kind: 'unknown', reason: 'not in the test' } } },
    clientPolicy: recordingClientPolicy(() => rules, decisions),
  });
  await outbound.start();
  port = outbound.boundPort();
});
afterAll(async () => {
  await outbound?.drain();
  await mesh?.close();
  plain?.close();
});

const get = (authority: string, path: string) => request(port, { path: `http://${authority}${path}`, headers: { host: authority }, agent: false });
const meshed = (service: string): Resolution => ({ kind: 'meshed', identities: [IDS.orders], protocol: 'http', endpoints: [], endpointsTruncated: false, service, reason: '' });

describe('HTTP by discovery, decided by the client policy', () => {
  it('a meshed Service the client names: through over mTLS', async () => {
    answers.set(mesh.inboundPort, meshed('orders.shop'));
    const r = await get(`127.0.0.1:${mesh.inboundPort}`, '/a');
    expect(r.status).toBe(200);
    expect(decisions.at(-1)).toMatchObject({ decision: 'allow', route: 'orders' });
  });

  it('the same Service in a mixed state: the service entry decides for the whole Service; an endpoint is dialled', async () => {
    answers.set(mesh.inboundPort, { kind: 'mixed', identities: [IDS.orders], protocol: 'http', endpoints: [{ address: '127.0.0.1', port: mesh.inboundPort, identity: IDS.orders, ready: true }], endpointsTruncated: false, service: 'orders.shop', reason: '' });
    const r = await get(`127.0.0.1:${mesh.inboundPort}`, '/b');
    expect(r.status).toBe(200);
    expect(decisions.at(-1)).toMatchObject({ decision: 'allow', route: 'orders' });
  });

  it('a mixed Service is not meshed as a whole: an identity entry alone does not let it through', async () => {
    rules = client(`        - { name: by-identity, spiffeId: ${IDS.orders} }\n`);
    const r = await get(`127.0.0.1:${mesh.inboundPort}`, '/c');
    expect(r.status).toBe(403);
    expect(JSON.parse(r.body).error).toMatchObject({ code: 'MESHLET_DENIED', client: 'frontend', reason: `destination 127.0.0.1:${mesh.inboundPort} is not among client "frontend"'s destinations; default is deny` });
  });

  it('a reload: the verdict cached on a destination is made again with the new client', async () => {
    answers.set(mesh.inboundPort, meshed('orders.shop'));
    // by-identity matches the meshed answer (every identity is orders).
    expect((await get(`127.0.0.1:${mesh.inboundPort}`, '/d')).status).toBe(200);
    rules = client(`        - { name: elsewhere, service: billing }\n`);
    const r = await get(`127.0.0.1:${mesh.inboundPort}`, '/e');
    expect(r.status).toBe(403);
    expect(mesh.appSaw.some((s) => s.url === '/e')).toBe(false);
    rules = null;
    expect((await get(`127.0.0.1:${mesh.inboundPort}`, '/f')).status).toBe(200);
  });

  it('outside the cluster: the cidr entry on its port lets it through; another port is refused with the ports it opens', async () => {
    rules = client(`        - { name: outside, cidr: 127.0.0.0/8, ports: [${plainPort}] }\n`);
    answers.set(plainPort, { kind: 'external', externalName: '', reason: 'outside' });
    const ok = await get(`127.0.0.1:${plainPort}`, '/out');
    expect(ok.status).toBe(200);
    expect(ok.body).toBe('plain saw /out');
    answers.set(mesh.inboundPort, { kind: 'external', externalName: '', reason: 'outside' });
    const refused = await get(`127.0.0.1:${mesh.inboundPort}`, '/out');
    expect(refused.status).toBe(403);
    expect(JSON.parse(refused.body).error.reason).toBe(`destination 127.0.0.1:${mesh.inboundPort} matches client "frontend"'s destination "outside" only on port ${plainPort}; default is deny`);
  });
});
