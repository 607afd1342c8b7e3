import * as http from 'node:http';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IDS, request } from './support/mesh-fixture.ts';
import { ORDERS_AUTHORITY, startMeshPair, type MeshPair } from './support/mesh-pair.ts';

describe('HTTP/1.1 through outbound sidecar -> mTLS -> inbound sidecar -> app', () => {
  let mesh: MeshPair;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  beforeAll(async () => {
    mesh = await startMeshPair();
  });
  afterAll(async () => {
    agent.destroy();
    await mesh.close();
  });

  it('forwards a GET and the app sees the path, query and the caller identity', async () => {
    const res = await request(mesh.outboundPort, { path: '/orders/42?full=1', headers: { host: ORDERS_AUTHORITY }, agent });
    expect(res.status).toBe(200);
    const echo = JSON.parse(res.body);
    expect(echo.url).toBe('/orders/42?full=1');
    expect(echo.headers['x-meshlet-peer-identity']).toBe(IDS.frontend);
    expect(echo.headers.host).toBe(ORDERS_AUTHORITY);
  });

  it('forwards a POST body and its Content-Length', async () => {
    const body = JSON.stringify({ item: 'book', qty: 2 });
    const res = await request(mesh.outboundPort, { method: 'POST', path: '/orders', headers: { host: ORDERS_AUTHORITY, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }, body, agent });
    expect(res.status).toBe(200);
    const saw = mesh.appSaw.at(-1)!;
    expect(saw.method).toBe('POST');
    expect(saw.body).toBe(body);
  });

  it('streams a large chunked request body and a large response body both ways, byte for byte', async () => {
    const size = 8 * 1024 * 1024;
    mesh.setHandler((req, res) => {
      const hash = createHash('sha256');
      let n = 0;
      req.on('data', (c: Buffer) => {
        hash.update(c);
        n += c.length;
      });
      req.on('end', () => {
        res.writeHead(200, { 'x-request-sha256': hash.digest('hex'), 'x-request-bytes': String(n) });
        // Chunked response, written in pieces with backpressure.
        let sent = 0;
        const piece = Buffer.alloc(64 * 1024, 7);
        const pump = (): void => {
          while (sent < size) {
            sent += piece.length;
            if (!res.write(piece)) return void res.once('drain', pump);
          }
          res.end();
        };
        pump();
      });
    });
    const piece = Buffer.alloc(100_000, 3);
    const expectedHash = createHash('sha256');
    for (let n = 0; n < size; n += piece.length) expectedHash.update(piece.subarray(0, Math.min(piece.length, size - n)));
    try {
      const result = await new Promise<{ status: number; headers: http.IncomingHttpHeaders; received: number }>((resolve, reject) => {
        // No Content-Length: node sends the body chunked, so the chunked path is what is tested.
        const req = http.request({ host: '127.0.0.1', port: mesh.outboundPort, method: 'PUT', path: '/upload', headers: { host: ORDERS_AUTHORITY }, agent }, (res) => {
          let received = 0;
          res.on('data', (c: Buffer) => (received += c.length));
          res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, received }));
          res.on('error', reject);
        });
        req.on('error', reject);
        let written = 0;
        const pump = (): void => {
          while (written < size) {
            const chunk = piece.subarray(0, Math.min(piece.length, size - written));
            written += chunk.length;
            if (!req.write(chunk)) return void req.once('drain', pump);
          }
          req.end();
        };
        pump();
      });
      expect(result.status).toBe(200);
      expect(result.headers['x-request-bytes']).toBe(String(size));
      expect(result.headers['x-request-sha256']).toBe(expectedHash.digest('hex'));
      expect(result.received).toBe(size);
    } finally {
      mesh.resetHandler();
    }
  });

  it('reuses one mTLS connection between the sidecars for sequential keep-alive requests', async () => {
    const before = mesh.inbound.registry.list().filter((c) => c.role === 'accepted');
    for (let i = 0; i < 20; i++) {
      const res = await request(mesh.outboundPort, { path: `/orders/${i}`, headers: { host: ORDERS_AUTHORITY }, agent });
      expect(res.status).toBe(200);
    }
    const after = mesh.inbound.registry.list().filter((c) => c.role === 'accepted');
    expect(after.length).toBe(1);
    expect(before.map((c) => c.id)).toEqual(after.map((c) => c.id));
    expect(after[0]!.peerIdentity).toBe(IDS.frontend);
    expect(after[0]!.tlsVersion).toBe('TLSv1.3');
    expect(after[0]!.requests).toBeGreaterThanOrEqual(20);
    expect(after[0]!.bytesIn).toBeGreaterThan(0);
    expect(after[0]!.bytesOut).toBeGreaterThan(0);
  });

  it('routes HTTP_PROXY-style absolute-form requests by the URI authority', async () => {
    const res = await request(mesh.outboundPort, { path: `http://${ORDERS_AUTHORITY}/orders/7?x=y`, headers: { host: ORDERS_AUTHORITY }, agent });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body).url).toBe('/orders/7?x=y');
  });
});

