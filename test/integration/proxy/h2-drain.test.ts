import * as http2 from 'node:http2';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from './support/mesh-fixture.ts';
import { ORDERS_AUTHORITY, startMeshPair, type MeshPair } from './support/mesh-pair.ts';

describe('graceful drain with HTTP/2 sessions', () => {
  const open: MeshPair[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((m) => m.close()));
  });

  it('says GOAWAY to the app, lets the in-flight stream finish, and closes with nothing cut', async () => {
    const mesh = await startMeshPair();
    open.push(mesh);
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let slowArrived = false;
    mesh.setHandler((_req, res) => {
      slowArrived = true;
      void released.then(() => res.end('slow done'));
    });
    const session = http2.connect(`http://127.0.0.1:${mesh.outboundPort}`);
    session.on('error', () => {});
    let goaway = false;
    session.once('goaway', () => (goaway = true));
    const slow = new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = session.request({ ':path': '/slow', ':authority': ORDERS_AUTHORITY });
      let status = 0;
      let body = '';
      req.on('response', (h) => (status = Number(h[':status'])));
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => resolve({ status, body }));
      req.on('error', reject);
    });
    await waitFor(() => slowArrived, 'the slow stream to reach the app');

    const drained = Promise.all([mesh.outbound.drain(), mesh.inbound.drain()]);
    await waitFor(() => goaway, 'GOAWAY from the outbound sidecar');
    release();
    expect(await slow).toEqual({ status: 200, body: 'slow done' });
    expect(await drained).toEqual([0, 0]);
    session.destroy();
  });
});
