import { afterEach, describe, expect, it } from 'vitest';
import { DestinationConfigError, DestinationTable } from '../../../src/data-plane/proxy/outbound/destination-table.ts';
import { IDS, request } from './support/mesh-fixture.ts';
import { startMeshPair, type MeshPair } from './support/mesh-pair.ts';
import { ordersClient, startOrdersServer, stopOrdersServer, unary } from './support/grpc-orders.ts';

const MESH_TD = { trustDomains: ['cluster.local'] };

describe('DestinationTable with defaultMesh', () => {
  const table = new DestinationTable({
    mesh: [{ host: 'orders.shop.svc', port: 80, address: { host: '10.0.0.7', port: 15006 }, expected: { spiffeId: IDS.orders } }],
    plaintext: [{ hosts: ['*.googleapis.com'] }],
    defaultMesh: { expected: MESH_TD, identities: { 'payments.shop.svc:8080': 'spiffe://cluster.local/ns/shop/sa/payments' } },
  });

  it('an explicit mesh destination and a plaintext rule still win', () => {
    expect(table.resolve('orders.shop.svc')).toMatchObject({ kind: 'mesh', destination: { address: { host: '10.0.0.7', port: 15006 } } });
    expect(table.resolve('storage.googleapis.com')).toEqual({ kind: 'plaintext', host: 'storage.googleapis.com', port: 80 });
  });

  it('anything else is dialed as named over mTLS, expecting the accepted trust domains', () => {
    expect(table.resolve('Inventory.shop.svc:9090')).toEqual({
      kind: 'mesh',
      host: 'inventory.shop.svc',
      port: 9090,
      destination: { host: 'inventory.shop.svc', port: 9090, address: { host: 'inventory.shop.svc', port: 9090 }, expected: MESH_TD },
    });
  });

  it('or exactly the identity listed for that host:port', () => {
    expect(table.resolve('payments.shop.svc:8080')).toMatchObject({ kind: 'mesh', destination: { expected: { spiffeId: 'spiffe://cluster.local/ns/shop/sa/payments' } } });
    expect(table.resolve('payments.shop.svc:80')).toMatchObject({ destination: { expected: MESH_TD } });
  });

  it('a malformed authority is still refused', () => {
    expect(table.resolve('bad:port')).toBeNull();
  });

  it('refuses a defaultMesh without an expected identity, or with a bad identities entry', () => {
    expect(() => new DestinationTable({ mesh: [], defaultMesh: { expected: {} } })).toThrow(/defaultMesh names no expected identity/);
    expect(() => new DestinationTable({ mesh: [], defaultMesh: { expected: MESH_TD, identities: { 'payments.shop.svc': IDS.orders } } })).toThrow(/is not host:port/);
    expect(() => new DestinationTable({ mesh: [], defaultMesh: { expected: MESH_TD, identities: { 'a:1': 'http://x' } } })).toThrow(DestinationConfigError);
  });
});

describe('mesh by default, end to end: the authority is dialed as named', () => {
  const open: MeshPair[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((m) => m.close()));
  });

  it('HTTP/1.1 to an unlisted host:port goes over mTLS to whoever answers there, if in the trust domain', async () => {
    const mesh = await startMeshPair({ defaultMesh: { expected: MESH_TD } });
    open.push(mesh);
    const res = await request(mesh.outboundPort, { path: '/orders', headers: { host: `127.0.0.1:${mesh.inboundPort}` } });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body).headers['x-meshlet-peer-identity']).toBe(IDS.frontend);
  });

  it('an identities entry pins the exact server: another identity there is 502 MESHLET_UPSTREAM_IDENTITY_REJECTED', async () => {
    const mesh = await startMeshPair({ defaultMesh: (inboundPort) => ({ expected: MESH_TD, identities: { [`127.0.0.1:${inboundPort}`]: IDS.imposter } }) });
    open.push(mesh);
    const res = await request(mesh.outboundPort, { path: '/orders', headers: { host: `127.0.0.1:${mesh.inboundPort}` } });
    expect(res.status).toBe(502);
    expect(res.headers['x-meshlet-error']).toBe('MESHLET_UPSTREAM_IDENTITY_REJECTED');
    expect(mesh.appSaw).toHaveLength(0);
  });

  it('a server outside the accepted trust domains is refused', async () => {
    const mesh = await startMeshPair({ defaultMesh: { expected: { trustDomains: ['other.example'] } } });
    open.push(mesh);
    const res = await request(mesh.outboundPort, { path: '/orders', headers: { host: `127.0.0.1:${mesh.inboundPort}` } });
    expect(res.headers['x-meshlet-error']).toBe('MESHLET_UPSTREAM_IDENTITY_REJECTED');
  });

  it('gRPC over h2 to an unlisted destination', async () => {
    const app = await startOrdersServer();
    const mesh = await startMeshPair({ defaultMesh: { expected: MESH_TD }, protocol: 'grpc', appPort: app.port });
    open.push(mesh);
    const client = ordersClient(mesh.outboundPort, `127.0.0.1:${mesh.inboundPort}`);
    try {
      expect(await unary(client, 'Get', { id: 3 })).toMatchObject({ id: 3, caller: [IDS.frontend] });
    } finally {
      client.close();
      await stopOrdersServer(app.server);
    }
  });
});
