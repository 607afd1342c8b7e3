import * as grpc from '@grpc/grpc-js';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AuthorizationDecision, RequestAuthorizer, RequestFacts } from '../../../src/data-plane/proxy/request-authorizer.ts';
import { IDS, meshTlsFor, request, waitFor } from './support/mesh-fixture.ts';
import { ORDERS_AUTHORITY, startMeshPair, type MeshPair } from './support/mesh-pair.ts';
import { rawExchange } from './support/raw-exchange.ts';
import { collect, ordersClient, startOrdersServer, stopOrdersServer, unary, type GrpcSeen, type OrdersClient } from './support/grpc-orders.ts';

/** `/public` is open to everyone, `unauthenticated` callers included; the rest needs a verified caller. */
const publicOrAuthenticated: RequestAuthorizer = {
  authorize(facts: RequestFacts): AuthorizationDecision {
    if (facts.path.startsWith('/public')) return { decision: 'allow', route: 'public', reason: 'open to all callers' };
    if (facts.peer === null) return { decision: 'deny', route: 'private', reason: 'unauthenticated callers are not allowed' };
    return { decision: 'allow', route: 'private', reason: 'authenticated caller' };
  },
};

/** One HTTP/2 GET: h2c by default, or h2 over the session `connect` makes (mTLS). */
function h2cGet(port: number, path: string, connect?: () => tls.TLSSocket): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const session = connect === undefined ? http2.connect(`http://127.0.0.1:${port}`) : http2.connect(`https://127.0.0.1:${port}`, { createConnection: connect });
    session.on('error', reject);
    const req = session.request({ ':path': path, ':authority': ORDERS_AUTHORITY, 'x-meshlet-peer-identity': IDS.orders });
    let status = 0;
    let body = '';
    req.on('response', (h) => (status = Number(h[':status'])));
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      session.close();
      resolve({ status, body });
    });
    req.on('error', reject);
  });
}

describe('a PERMISSIVE port: mTLS callers and plaintext callers on the same listener', () => {
  let mesh: MeshPair;
  beforeAll(async () => {
    mesh = await startMeshPair({ permissive: true, authorizer: publicOrAuthenticated });
  });
  afterAll(async () => {
    await mesh.close();
  });

  it('a plaintext HTTP/1.1 caller reaches an unauthenticated-allowed route, with no identity (a forged one is dropped)', async () => {
    const agent = new http.Agent({ keepAlive: true });
    try {
      const res = await request(mesh.inboundPort, { path: '/public/menu', headers: { host: ORDERS_AUTHORITY, 'x-meshlet-peer-identity': IDS.frontend }, agent });
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body).headers['x-meshlet-peer-identity']).toBeUndefined();
      const plain = mesh.inbound.registry.list().find((c) => c.role === 'accepted' && c.tlsVersion === null);
      expect(plain).toMatchObject({ direction: 'inbound', peerIdentity: null, requests: 1 });
    } finally {
      agent.destroy();
    }
  });

  it('a plaintext caller is denied on an authenticated-only route (403), the app never sees it', async () => {
    const before = mesh.appSaw.length;
    const res = await request(mesh.inboundPort, { path: '/private/orders', headers: { host: ORDERS_AUTHORITY } });
    expect(res.status).toBe(403);
    expect(JSON.parse(res.body).error).toMatchObject({ code: 'MESHLET_DENIED', route: 'private', reason: 'unauthenticated callers are not allowed' });
    expect(mesh.appSaw.length).toBe(before);
  });

  it('a plaintext h2c caller is served too, under the same rules', async () => {
    const open = await h2cGet(mesh.inboundPort, '/public/h2');
    expect(open.status).toBe(200);
    expect(JSON.parse(open.body).headers['x-meshlet-peer-identity']).toBeUndefined();
    expect((await h2cGet(mesh.inboundPort, '/private/h2')).status).toBe(403);
  });

  it('an mTLS caller (through its outbound sidecar) still works on the same port, as its verified identity', async () => {
    const res = await request(mesh.outboundPort, { path: '/private/orders', headers: { host: ORDERS_AUTHORITY } });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body).headers['x-meshlet-peer-identity']).toBe(IDS.frontend);
  });

  it('an HTTP/2 caller through its outbound sidecar (h2 over mTLS, ALPN h2) is served as its verified identity', async () => {
    const res = await h2cGet(mesh.outboundPort, '/private/h2');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body).headers['x-meshlet-peer-identity']).toBe(IDS.frontend);
  });

  it('node:http2 over mTLS straight to the port, with a real SVID (the session used to hang)', async () => {
    const frontend = meshTlsFor(mesh.pki.svids.frontend);
    const res = await h2cGet(mesh.inboundPort, '/private/direct', () => frontend.connect({ host: '127.0.0.1', port: mesh.inboundPort }, { spiffeId: IDS.orders }, { ALPNProtocols: ['h2'] }));
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body).headers['x-meshlet-peer-identity']).toBe(IDS.frontend);
  });

  it('a TLS caller without a client certificate is refused, never downgraded to plaintext', async () => {
    const before = mesh.appSaw.length;
    const outcome = await new Promise<string>((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port: mesh.inboundPort, ca: mesh.pki.svids.frontend.bundlePem, checkServerIdentity: () => undefined, minVersion: 'TLSv1.3' }, () => {
        s.write(`GET /public/x HTTP/1.1\r\nHost: ${ORDERS_AUTHORITY}\r\n\r\n`);
      });
      let data = '';
      s.on('data', (c: Buffer) => (data += c.toString()));
      s.once('error', (err: Error & { code?: string }) => resolve(`error ${err.code}`));
      s.once('close', () => resolve(data === '' ? 'closed' : data));
    });
    expect(outcome).not.toMatch(/HTTP\/1\.1 200/);
    expect(mesh.appSaw.length).toBe(before);
    await waitFor(() => mesh.handshakeFailures.some((f) => f.reason === 'no_client_cert'), 'the refusal to be observed');
  });
});

describe('a STRICT port (the default)', () => {
  const open: MeshPair[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((m) => m.close()));
  });

  it('refuses plaintext (no HTTP answer, closed) and counts it as plaintext_on_strict', async () => {
    const mesh = await startMeshPair({ authorizer: publicOrAuthenticated });
    open.push(mesh);
    const out = await rawExchange(mesh.inboundPort, `GET /public/menu HTTP/1.1\r\nHost: ${ORDERS_AUTHORITY}\r\n\r\n`);
    expect(out.closed).toBe(true);
    expect(out.response).not.toMatch(/^HTTP\/1\.1 200/);
    expect(mesh.appSaw).toHaveLength(0);
    await waitFor(() => mesh.handshakeFailures.length > 0, 'the refusal to be observed');
    expect(mesh.handshakeFailures).toContainEqual({ direction: 'inbound', reason: 'plaintext_on_strict' });
  });

  it('refuses an h2c preface the same way', async () => {
    const mesh = await startMeshPair({ authorizer: publicOrAuthenticated });
    open.push(mesh);
    const out = await rawExchange(mesh.inboundPort, 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    expect(out.closed).toBe(true);
    expect(mesh.appSaw).toHaveLength(0);
  });
});

describe('gRPC to a PERMISSIVE port (issue 11 item 10: HTTP/2 over mTLS hung while HTTP/1.1 and h2c worked)', () => {
  let mesh: MeshPair;
  let server: grpc.Server;
  let seen: GrpcSeen[];
  let client: OrdersClient;
  const peers: (string | null)[] = [];
  const allowAll: RequestAuthorizer = {
    authorize(facts) {
      peers.push(facts.peer);
      return { decision: 'allow', route: 'orders', reason: 'every caller' };
    },
  };

  beforeAll(async () => {
    const app = await startOrdersServer();
    server = app.server;
    seen = app.seen;
    mesh = await startMeshPair({ permissive: true, protocol: 'grpc', appPort: app.port, authorizer: allowAll });
    client = ordersClient(mesh.outboundPort, ORDERS_AUTHORITY);
  });
  afterAll(async () => {
    client.close();
    await mesh.close();
    await stopOrdersServer(server);
  });

  it('a unary call from @grpc/grpc-js through the outbound sidecar: h2 over mTLS with real SVIDs, the app learns the verified caller', async () => {
    const res = await unary(client, 'Get', { id: 7 });
    expect(res).toEqual({ id: 7, status: 'shipped', caller: [IDS.frontend] });
    expect(peers.at(-1)).toBe(IDS.frontend);
    const toPeer = mesh.outbound.registry.list().filter((c) => c.role === 'originated' && c.remotePort === mesh.inboundPort);
    expect(toPeer.map((c) => c.tlsVersion)).toEqual(['TLSv1.3']);
  });

  it('a server-streaming call over the same mTLS session streams every message with its trailers', async () => {
    expect(await collect(client.Watch({ count: 20 }))).toEqual(Array.from({ length: 20 }, (_, i) => ({ seq: i })));
  });

  it('a plaintext gRPC caller (h2c) on the same port is served too, as unauthenticated, with no identity', async () => {
    const plain = ordersClient(mesh.inboundPort, ORDERS_AUTHORITY);
    try {
      const forged = new grpc.Metadata();
      forged.set('x-meshlet-peer-identity', IDS.imposter);
      const res = await unary(plain, 'Get', { id: 8 }, forged);
      expect(res).toEqual({ id: 8, status: 'shipped', caller: [] });
      expect(peers.at(-1)).toBeNull();
      expect(seen.at(-1)!.metadata['x-meshlet-peer-identity']).toBeUndefined();
    } finally {
      plain.close();
    }
  });
});
