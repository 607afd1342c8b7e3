import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OutboundProxy } from '../../../src/data-plane/proxy/outbound/outbound-proxy.ts';
import type { ClientDecision } from '../../../src/data-plane/policy/client-policy.ts';
import { frontendClient } from '../../unit/policy/frontend-client.ts';
import type { Resolution } from '../../../src/data-plane/discovery/resolution.ts';
import { IDS, meshTlsFor, request } from '../proxy/support/mesh-fixture.ts';
import { startMeshPair, type MeshPair } from '../proxy/support/mesh-pair.ts';
import { recordingClientPolicy } from './recording-client-policy.ts';

/**
 * Security regression (issue 16 review): the verdict the route step caches on a discovered
 * destination must not outlive discovery's answer about it. Pod IPs are reused: an address that
 * discovery said belonged to Service `orders` (allowed by a `service` entry) can next belong to
 * Service `vault` (not allowed). Before the fix the destination object — and the allow cached on
 * it — was found by host:port alone and kept the first answer's Service, so requests to the new
 * owner went through. Real sockets (plain HTTP to an unmeshed app; mTLS to a real inbound sidecar
 * for the meshed case); discovery's answer is the stand-in.
 */
let mesh: MeshPair;
let plain: http.Server;
let plainPort: number;
let outbound: OutboundProxy;
let port: number;
const answers = new Map<number, Resolution>();
const decisions: ClientDecision[] = [];

beforeAll(async () => {
  mesh = await startMeshPair({ authorizer: { authorize: () => ({ decision: 'allow', route: 'all', reason: 'test' }) } });
  plain = http.createServer((req, res) => res.end(`plain saw ${req.url}`));
  await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
  plainPort = (plain.address() as AddressInfo).port;
  const rules = frontendClient('        - { name: orders, service: orders }\n', { namespace: 'shop' });
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

describe('an address discovery now says belongs to another Service', () => {
  it('unmeshed: allowed while it is orders, refused (403 MESHLET_DENIED, nothing sent) once it is vault', async () => {
    const unmeshed = (service: string): Resolution => ({ kind: 'unmeshed', protocol: 'http', endpoints: [], endpointsTruncated: false, service, reason: '' });
    answers.set(plainPort, unmeshed('orders.shop'));
    const ok = await get(`127.0.0.1:${plainPort}`, '/orders');
    expect(ok.status).toBe(200);
    answers.set(plainPort, unmeshed('vault.shop'));
    const refused = await get(`127.0.0.1:${plainPort}`, '/secrets');
    expect(refused.status).toBe(403);
    expect(JSON.parse(refused.body).error).toMatchObject({ code: 'MESHLET_DENIED', client: 'frontend' });
    expect(decisions.at(-1)).toMatchObject({ decision: 'deny', code: 'no-destination-matched' });
  });

  it('meshed, same identity: the same', async () => {
    const meshed = (service: string): Resolution => ({ kind: 'meshed', identities: [IDS.orders], protocol: 'http', endpoints: [], endpointsTruncated: false, service, reason: '' });
    answers.set(mesh.inboundPort, meshed('orders.shop'));
    expect((await get(`127.0.0.1:${mesh.inboundPort}`, '/a')).status).toBe(200);
    answers.set(mesh.inboundPort, meshed('vault.shop'));
    const refused = await get(`127.0.0.1:${mesh.inboundPort}`, '/b');
    expect(refused.status).toBe(403);
    expect(mesh.appSaw.some((s) => s.url === '/b')).toBe(false);
    // And back: the destination the answer names again is allowed again.
    answers.set(mesh.inboundPort, meshed('orders.shop'));
    expect((await get(`127.0.0.1:${mesh.inboundPort}`, '/c')).status).toBe(200);
  });
});
