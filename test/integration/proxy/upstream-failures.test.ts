import * as http from 'node:http';
import * as net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeServer, listen, request } from './support/mesh-fixture.ts';
import { ORDERS_AUTHORITY, startMeshPair, type MeshPair } from './support/mesh-pair.ts';

describe('when the next hop misbehaves', () => {
  let mesh: MeshPair;
  let garbage: net.Server;
  let garbagePort: number;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  beforeAll(async () => {
    // Answers every request with bytes that are not HTTP.
    garbage = net.createServer((s) => s.once('data', () => s.end('HTTP/1.1 2x0 Nope\r\nbad header line\r\n\r\n')));
    garbagePort = await listen(garbage);
    mesh = await startMeshPair({ plaintext: [{ cidrs: ['127.0.0.1/32'], ports: [garbagePort] }] });
  });
  afterAll(async () => {
    agent.destroy();
    await mesh.close();
    await closeServer(garbage);
  });

  // The app drops a pooled keep-alive connection as the next request arrives on it (the
  // idle-close race): the second request on every app connection gets no answer.
  function dropSecondRequestPerConnection(): { served: string[] } {
    const served: string[] = [];
    const perSocket = new WeakMap<net.Socket, number>();
    mesh.setHandler((req, res) => {
      const n = (perSocket.get(req.socket) ?? 0) + 1;
      perSocket.set(req.socket, n);
      if (n === 2) {
        req.socket.destroy();
        return;
      }
      served.push(`${req.method} ${req.url}`);
      req.resume();
      req.on('end', () => res.end('ok'));
    });
    return { served };
  }

  it('retries a bodiless GET once on a fresh connection when its pooled connection dies before any response', async () => {
    const { served } = dropSecondRequestPerConnection();
    try {
      expect((await request(mesh.outboundPort, { path: '/a', headers: { host: ORDERS_AUTHORITY }, agent })).status).toBe(200);
      const second = await request(mesh.outboundPort, { path: '/b', headers: { host: ORDERS_AUTHORITY }, agent });
      expect(second.status).toBe(200);
      expect(second.body).toBe('ok');
      expect(served).toEqual(['GET /a', 'GET /b']);
    } finally {
      mesh.resetHandler();
    }
  });

  it('never retries a request with a body: 502 MESHLET_UPSTREAM_RESET', async () => {
    const { served } = dropSecondRequestPerConnection();
    try {
      // A fresh pool connection for this test: drain the inbound's pooled connection first.
      expect((await request(mesh.outboundPort, { method: 'POST', path: '/one', headers: { host: ORDERS_AUTHORITY, 'content-length': 1 }, body: 'x', agent })).status).toBe(200);
      const res = await request(mesh.outboundPort, { method: 'POST', path: '/two', headers: { host: ORDERS_AUTHORITY, 'content-length': 1 }, body: 'y', agent });
      expect(res.status).toBe(502);
      expect(res.headers['x-meshlet-error']).toBe('MESHLET_UPSTREAM_RESET');
      expect(served).not.toContain('POST /two');
    } finally {
      mesh.resetHandler();
    }
  });

  it('an unparsable response: 502 MESHLET_UPSTREAM_BAD_RESPONSE', async () => {
    const res = await request(mesh.outboundPort, { path: '/', headers: { host: `127.0.0.1:${garbagePort}` } });
    expect(res.status).toBe(502);
    expect(res.headers['x-meshlet-error'], res.body).toBe('MESHLET_UPSTREAM_BAD_RESPONSE');
  });

  it('the app dies mid-body: the client connection is cut, never a short body that looks complete', async () => {
    mesh.setHandler((_req, res) => {
      res.writeHead(200, { 'content-length': '100000' });
      res.write(Buffer.alloc(1000, 1), () => res.socket?.destroy());
    });
    try {
      const outcome = await request(mesh.outboundPort, { path: '/partial', headers: { host: ORDERS_AUTHORITY } }).then(
        (r) => `complete ${r.body.length}`,
        (err: Error & { code?: string }) => `error ${err.code ?? err.message}`,
      );
      expect(outcome).toMatch(/^error /);
    } finally {
      mesh.resetHandler();
    }
  });
});
