import * as http from 'node:http';
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OutboundProxy } from '../../../src/data-plane/proxy/outbound/outbound-proxy.ts';
import type { Resolution } from '../../../src/data-plane/discovery/resolution.ts';
import { IDS, meshTlsFor, request } from './support/mesh-fixture.ts';
import { startMeshPair, type MeshPair } from './support/mesh-pair.ts';

/**
 * Issue 14 item 3, HTTP: a request whose Host nothing configured names is routed by what
 * discovery says — meshed: mTLS pinned to the identities it names (a real inbound sidecar with
 * the orders SVID); unmeshed: plaintext; outside: the passthrough rule; unknown: refused,
 * 502 MESHLET_UNKNOWN_DESTINATION. Answers come synchronously (cached) or after a wait (asked):
 * both paths are run. Discovery's answer is the one stand-in (the client is tested against the
 * real identity service in test/integration/discovery/).
 */
let mesh: MeshPair;
let plain: http.Server;
let plainPort: number;
let outbound: OutboundProxy;
let port: number;
const answers = new Map<number, Resolution>();
let async = false;

const meshed = (identities: string[]): Resolution => ({ kind: 'meshed', identities, protocol: 'http', endpoints: [], endpointsTruncated: false, service: 'orders.shop', reason: '' });

beforeAll(async () => {
  mesh = await startMeshPair({ authorizer: { authorize: () => ({ decision: 'allow', route: 'all', reason: 'test' }) } });
  plain = http.createServer((req, res) => res.end(`plain saw ${req.url} peer=${req.headers['x-meshlet-peer-identity'] ?? 'none'}`));
  await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
  plainPort = (plain.address() as AddressInfo).port;
  outbound = new OutboundProxy({
    tls: meshTlsFor(mesh.pki.svids.frontend),
    destinations: { mesh: [] },
    listenPort: 0,
    transparent: {
      passthrough: 'allow',
      discovery: {
        resolve: ({ port: p }) => {
          const a = answers.get(p) ?? { kind: 'unknown', reason: 'not in the test' };
          return async ? new Promise((r) => setImmediate(() => r(a))) : a;
        },
      },
    },
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

describe.each([false, true])('HTTP routed by discovery (answer after a wait: %s)', (wait) => {
  beforeAll(() => {
    async = wait;
    answers.set(mesh.inboundPort, meshed([IDS.orders]));
    answers.set(plainPort, { kind: 'unmeshed', protocol: 'http', endpoints: [], endpointsTruncated: false, service: 'legacy.shop', reason: '' });
  });

  it('meshed: over mTLS to the destination, which sees the caller; the app sees its verified identity', async () => {
    const r = await get(`127.0.0.1:${mesh.inboundPort}`, '/m');
    expect(r.status).toBe(200);
    expect(mesh.appSaw.at(-1)).toMatchObject({ url: '/m' });
    expect(JSON.stringify(mesh.appSaw.at(-1)!.rawHeaders)).toContain(IDS.frontend);
  });

  it('unmeshed: plaintext to it', async () => {
    const r = await get(`127.0.0.1:${plainPort}`, '/p');
    expect(r).toMatchObject({ status: 200, body: 'plain saw /p peer=none' });
    // Labelled as what discovery said it is (the `peer` metric label, /connections).
    expect(outbound.registry.list().some((c) => c.role === 'originated' && c.remotePort === plainPort && c.peerIdentity === 'unmeshed')).toBe(true);
  });

  it('unknown: 502 MESHLET_UNKNOWN_DESTINATION, nothing sent', async () => {
    const r = await get('127.0.0.1:9', '/u');
    expect(r.status).toBe(502);
    expect(r.headers['x-meshlet-error']).toBe('MESHLET_UNKNOWN_DESTINATION');
  });

  it('meshed, but the server is not who discovery names: 502 MESHLET_UPSTREAM_IDENTITY_REJECTED, never plaintext', async () => {
    answers.set(mesh.inboundPort, meshed(['spiffe://cluster.local/ns/shop/sa/a', 'spiffe://cluster.local/ns/shop/sa/b']));
    try {
      const before = mesh.appSaw.length;
      const r = await get(`127.0.0.1:${mesh.inboundPort}`, '/wrong');
      expect(r.status).toBe(502);
      expect(r.headers['x-meshlet-error']).toBe('MESHLET_UPSTREAM_IDENTITY_REJECTED');
      expect(mesh.appSaw.length).toBe(before);
    } finally {
      answers.set(mesh.inboundPort, meshed([IDS.orders]));
    }
  });

  it('HTTP/2 (h2c from the app): the same decision per stream', async () => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const s = session.request({ ':method': 'GET', ':path': '/h2', ':authority': `127.0.0.1:${mesh.inboundPort}` });
        s.on('response', (h) => resolve(Number(h[':status'])));
        s.on('error', reject);
        s.resume();
      });
      expect(status).toBe(200);
    } finally {
      session.close();
    }
  });
});
