import * as http from 'node:http';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { closeServer, createMeshPki, IDS, listen, request, type MeshPki } from './support/mesh-fixture.ts';
import { ORDERS_AUTHORITY, startMeshPair, type MeshPair } from './support/mesh-pair.ts';
import { rawExchange } from './support/raw-exchange.ts';

describe('what the mesh refuses, and what the app is told', () => {
  let pki: MeshPki;
  const open: MeshPair[] = [];
  const start = async (opts: Parameters<typeof startMeshPair>[0] = {}): Promise<MeshPair> => {
    const m = await startMeshPair({ pki, ...opts });
    open.push(m);
    return m;
  };
  beforeAll(async () => {
    pki = await createMeshPki();
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((m) => m.close()));
  });

  it('STRICT inbound: a plaintext HTTP request to the TLS port gets no HTTP answer and a closed connection', async () => {
    const mesh = await start();
    const out = await rawExchange(mesh.inboundPort, 'GET /orders HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(out.closed).toBe(true);
    expect(out.response).not.toMatch(/^HTTP\//);
    expect(mesh.appSaw).toHaveLength(0);
  });

  it('STRICT inbound: a TLS client without a certificate is refused during the handshake', async () => {
    const mesh = await start();
    const f = pki.svids.frontend;
    const outcome = await new Promise<string>((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port: mesh.inboundPort, ca: f.bundlePem, checkServerIdentity: () => undefined, minVersion: 'TLSv1.3' }, () => {
        s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
      });
      let data = '';
      s.on('data', (c: Buffer) => (data += c.toString()));
      s.once('error', (err: Error & { code?: string }) => resolve(`error ${err.code}`));
      s.once('close', () => resolve(data === '' ? 'closed' : data));
    });
    expect(outcome).not.toMatch(/HTTP\/1\.1 200/);
    expect(mesh.appSaw).toHaveLength(0);
  });

  it('a peer sidecar presenting the wrong identity: 502 MESHLET_UPSTREAM_IDENTITY_REJECTED, nothing reaches the app', async () => {
    // The orders listener presents the imposter's SVID (same trust domain, other service account).
    const mesh = await start({ ordersSvid: 'imposter' });
    const res = await request(mesh.outboundPort, { path: '/orders', headers: { host: ORDERS_AUTHORITY } });
    expect(res.status).toBe(502);
    expect(res.headers['x-meshlet-error']).toBe('MESHLET_UPSTREAM_IDENTITY_REJECTED');
    const body = JSON.parse(res.body);
    expect(body.error.code).toBe('MESHLET_UPSTREAM_IDENTITY_REJECTED');
    expect(body.error.message).toContain(IDS.orders);
    expect(mesh.appSaw).toHaveLength(0);
  });

  it('an unknown destination is refused (502 MESHLET_UNKNOWN_DESTINATION), never sent in plaintext', async () => {
    const mesh = await start();
    const res = await request(mesh.outboundPort, { path: '/', headers: { host: 'payments.shop.svc.cluster.local:8080' } });
    expect(res.status).toBe(502);
    expect(res.headers['x-meshlet-error']).toBe('MESHLET_UNKNOWN_DESTINATION');
    expect(JSON.parse(res.body).error.message).toContain('payments.shop.svc.cluster.local:8080');
  });

  it('a known name on another port is a different destination, also refused', async () => {
    const mesh = await start();
    const res = await request(mesh.outboundPort, { path: '/', headers: { host: 'orders.shop.svc.cluster.local:9090' } });
    expect(res.headers['x-meshlet-error']).toBe('MESHLET_UNKNOWN_DESTINATION');
  });

  it('an HTTP/1.0 request naming no destination: 400 MESHLET_MISSING_HOST', async () => {
    const mesh = await start();
    const out = await rawExchange(mesh.outboundPort, 'GET /orders HTTP/1.0\r\n\r\n');
    expect(out.response).toMatch(/^HTTP\/1\.1 400 /);
    expect(out.response).toContain('x-meshlet-error: MESHLET_MISSING_HOST');
  });

  it('a configured plaintext destination outside the mesh is reached directly', async () => {
    const outside = http.createServer((req, res) => res.end(`outside saw ${req.url} from ${req.headers['x-meshlet-peer-identity'] ?? 'nobody'}`));
    const port = await listen(outside);
    try {
      const mesh = await start({ plaintext: [{ cidrs: ['127.0.0.0/8'], ports: [port] }] });
      const res = await request(mesh.outboundPort, { path: '/status', headers: { host: `127.0.0.1:${port}`, 'x-meshlet-peer-identity': IDS.orders } });
      expect(res.status).toBe(200);
      // The app cannot pass an identity along, even to the outside.
      expect(res.body).toBe('outside saw /status from nobody');
    } finally {
      await closeServer(outside);
    }
  });

  it('the app behind the inbound sidecar is down: 503 MESHLET_UPSTREAM_CONNECT_FAILED reaches the calling app', async () => {
    const mesh = await start();
    await closeServer(mesh.app);
    const res = await request(mesh.outboundPort, { path: '/orders', headers: { host: ORDERS_AUTHORITY } });
    expect(res.status).toBe(503);
    expect(res.headers['x-meshlet-error']).toBe('MESHLET_UPSTREAM_CONNECT_FAILED');
    expect(JSON.parse(res.body).error.message).toContain(`app port ${mesh.appPort}`);
    expect(mesh.refused).toContainEqual({ direction: 'inbound', code: 'MESHLET_UPSTREAM_CONNECT_FAILED' });
  });

  it('the peer sidecar is down: 503 MESHLET_UPSTREAM_CONNECT_FAILED from the outbound sidecar', async () => {
    const mesh = await start();
    await mesh.inbound.drain();
    const res = await request(mesh.outboundPort, { path: '/orders', headers: { host: ORDERS_AUTHORITY } });
    expect(res.status).toBe(503);
    expect(res.headers['x-meshlet-error']).toBe('MESHLET_UPSTREAM_CONNECT_FAILED');
    expect(JSON.parse(res.body).error.message).toContain('peer sidecar');
    expect(mesh.refused).toContainEqual({ direction: 'outbound', code: 'MESHLET_UPSTREAM_CONNECT_FAILED' });
  });

  it('a request head that does not arrive within timeouts.requestHeadersMs: 408 and a close', async () => {
    const mesh = await start({ settings: { timeouts: { requestHeadersMs: 400 } } });
    const out = await rawExchange(mesh.outboundPort, 'GET /slow HTTP/1.1\r\nHost: x\r\n', undefined, 10_000);
    expect(out.response).toMatch(/^HTTP\/1\.1 408 /);
    expect(out.response).toContain('x-meshlet-error: MESHLET_HEADERS_TIMEOUT');
    expect(out.closed).toBe(true);
  });

  it('a peer that accepts TCP but never finishes the handshake: 502 MESHLET_UPSTREAM_TLS_TIMEOUT', async () => {
    // Accepts TCP, reads the ClientHello, never answers.
    const silent = net.createServer();
    const sockets = new Set<net.Socket>();
    silent.on('connection', (s) => sockets.add(s));
    const port = await listen(silent);
    try {
      const mesh = await start({
        settings: { timeouts: { tlsHandshakeMs: 300 } },
        extraMesh: [{ host: 'silent.shop.svc.cluster.local', port: 80, address: { host: '127.0.0.1', port }, expected: { spiffeId: IDS.orders } }],
      });
      const res = await request(mesh.outboundPort, { path: '/', headers: { host: 'silent.shop.svc.cluster.local' } });
      expect(res.status).toBe(502);
      expect(res.headers['x-meshlet-error']).toBe('MESHLET_UPSTREAM_TLS_TIMEOUT');
    } finally {
      for (const s of sockets) s.destroy();
      await closeServer(silent);
    }
  });
});
