import * as http from 'node:http';
import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { request, waitFor } from './support/mesh-fixture.ts';
import { ORDERS_AUTHORITY, startMeshPair, type MeshPair } from './support/mesh-pair.ts';

function connectOutcome(port: number): Promise<'connected' | string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve('connected');
    });
    s.once('error', (err: Error & { code?: string }) => resolve(err.code ?? 'error'));
  });
}

describe('graceful drain', () => {
  const open: MeshPair[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((m) => m.close()));
  });

  it('stops accepting, closes idle keep-alive connections, and lets in-flight requests finish', async () => {
    const mesh = await startMeshPair();
    open.push(mesh);
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let slowArrived = false;
    mesh.setHandler((req, res) => {
      if (req.url === '/slow') {
        slowArrived = true;
        void released.then(() => res.end('slow done'));
      } else {
        res.end('fast');
      }
    });

    // An idle keep-alive connection from the app to its outbound sidecar.
    const idleAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const first = await request(mesh.outboundPort, { path: '/fast', headers: { host: ORDERS_AUTHORITY }, agent: idleAgent });
    expect(first.status).toBe(200);
    const idleSocket = (idleAgent.freeSockets[Object.keys(idleAgent.freeSockets)[0]!] ?? [])[0]!;
    expect(idleSocket).toBeDefined();
    let idleClosed = false;
    idleSocket.once('close', () => (idleClosed = true));

    // A request in flight at the app.
    const slow = request(mesh.outboundPort, { path: '/slow', headers: { host: ORDERS_AUTHORITY }, agent: false });
    await waitFor(() => slowArrived, 'the slow request to reach the app');

    const drained = Promise.all([mesh.outbound.drain(), mesh.inbound.drain()]);
    expect(mesh.outbound.draining).toBe(true);
    await waitFor(() => idleClosed, 'the idle keep-alive connection to be closed');
    expect(await connectOutcome(mesh.outboundPort)).toBe('ECONNREFUSED');
    expect(await connectOutcome(mesh.inboundPort)).toBe('ECONNREFUSED');

    release();
    const res = await slow;
    expect(res.status).toBe(200);
    expect(res.body).toBe('slow done');
    expect(res.headers.connection).toBe('close');
    expect(await drained).toEqual([0, 0]);
    idleAgent.destroy();
  });

  it('cuts what is still in flight when timeouts.drainMs runs out, and says how many', async () => {
    const mesh = await startMeshPair({ settings: { timeouts: { drainMs: 300 } } });
    open.push(mesh);
    let arrived = false;
    mesh.setHandler(() => {
      arrived = true; // never answers
    });
    const stuck = request(mesh.outboundPort, { path: '/stuck', headers: { host: ORDERS_AUTHORITY }, agent: false }).then(
      (r) => `status ${r.status}`,
      (err: Error & { code?: string }) => `error ${err.code}`,
    );
    await waitFor(() => arrived, 'the request to reach the app');
    const [outCut, inCut] = await Promise.all([mesh.outbound.drain(), mesh.inbound.drain()]);
    expect(outCut + inCut).toBeGreaterThanOrEqual(1);
    expect(await stuck).toMatch(/^(error|status 50)/);
  });
});
