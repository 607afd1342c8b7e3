import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IDS } from './support/mesh-fixture.ts';
import { ORDERS_AUTHORITY, startMeshPair, type MeshPair } from './support/mesh-pair.ts';
import { DenyByPathAuthorizer } from './support/stand-in-policy.ts';
import { collect, ordersClient, startOrdersServer, stopOrdersServer, unary, type GrpcSeen, type OrdersClient } from './support/grpc-orders.ts';

describe('gRPC through the mesh: @grpc/grpc-js client -> outbound (h2c) -> h2 over mTLS -> inbound -> gRPC server', () => {
  let mesh: MeshPair;
  let server: grpc.Server;
  let seen: GrpcSeen[];
  let client: OrdersClient;
  const authorizer = new DenyByPathAuthorizer(['/shop.Orders/Drop'], { record: true });

  beforeAll(async () => {
    const app = await startOrdersServer();
    server = app.server;
    seen = app.seen;
    mesh = await startMeshPair({ authorizer, protocol: 'grpc', appPort: app.port });
    client = ordersClient(mesh.outboundPort, ORDERS_AUTHORITY);
  });
  afterAll(async () => {
    client.close();
    await mesh.close();
    await stopOrdersServer(server);
  });

  it('a unary call is allowed, authorized per stream with the gRPC service and method, and the app learns the verified caller', async () => {
    const forged = new grpc.Metadata();
    forged.set('x-meshlet-peer-identity', IDS.imposter);
    const res = await unary(client, 'Get', { id: 42 }, forged);
    expect(res).toEqual({ id: 42, status: 'shipped', caller: [IDS.frontend] });
    expect(authorizer.seen!.at(-1)).toEqual({ peer: IDS.frontend, port: mesh.inbound.boundPorts()[0]!.appPort, method: 'POST', path: '/shop.Orders/Get', grpc: { service: 'shop.Orders', method: 'Get' } });
    expect(seen.at(-1)!.metadata['x-meshlet-peer-identity']).toBe(IDS.frontend);
  });

  it('a server-streaming call streams every message and ends with status OK (trailers relayed both hops)', async () => {
    const messages = await collect(client.Watch({ count: 50 }));
    expect(messages).toEqual(Array.from({ length: 50 }, (_, i) => ({ seq: i })));
  });

  it('many concurrent calls share one h2 mTLS session between the sidecars', async () => {
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => unary(client, 'Get', { id: i })));
    expect(results.map((r) => r.id)).toEqual(Array.from({ length: 40 }, (_, i) => i));
    const toPeer = mesh.outbound.registry.list().filter((c) => c.role === 'originated' && c.remotePort === mesh.inboundPort);
    expect(toPeer).toHaveLength(1);
    expect(toPeer[0]!.tlsVersion).toBe('TLSv1.3');
  });

  it('a denied method: the client sees PERMISSION_DENIED (7) with the reason, and the server never sees the call', async () => {
    const before = seen.length;
    const err = await unary(client, 'Drop', { id: 1 }).then(
      () => null,
      (e: grpc.ServiceError) => e,
    );
    expect(err).not.toBeNull();
    expect(err!.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(err!.details).toContain('request denied by policy');
    expect(err!.details).toContain('/shop.Orders/Drop is denied to every caller');
    expect(err!.metadata.get('x-meshlet-error')).toEqual(['MESHLET_DENIED']);
    expect(seen.length).toBe(before);
    expect(mesh.refused).toContainEqual({ direction: 'inbound', code: 'MESHLET_DENIED' });
    // The channel stays usable after a denial.
    expect((await unary(client, 'Get', { id: 7 })).id).toBe(7);
  });

  it('an unknown destination: UNAVAILABLE (14) naming it, never sent anywhere', async () => {
    const other = ordersClient(mesh.outboundPort, 'payments.shop.svc.cluster.local:9090');
    try {
      const err = await unary(other, 'Get', { id: 1 }).then(
        () => null,
        (e: grpc.ServiceError) => e,
      );
      expect(err!.code).toBe(grpc.status.UNAVAILABLE);
      expect(err!.details).toContain('payments.shop.svc.cluster.local:9090');
      expect(err!.metadata.get('x-meshlet-error')).toEqual(['MESHLET_UNKNOWN_DESTINATION']);
    } finally {
      other.close();
    }
  });
});

describe('gRPC when the app behind the inbound sidecar is down', () => {
  it('UNAVAILABLE (14) with the inbound sidecar\'s reason', async () => {
    const app = await startOrdersServer();
    const mesh = await startMeshPair({ protocol: 'grpc', appPort: app.port });
    await stopOrdersServer(app.server);
    const client = ordersClient(mesh.outboundPort, ORDERS_AUTHORITY);
    try {
      const err = await unary(client, 'Get', { id: 1 }).then(
        () => null,
        (e: grpc.ServiceError) => e,
      );
      expect(err!.code).toBe(grpc.status.UNAVAILABLE);
      expect(err!.details).toContain(`app port ${app.port}`);
      expect(err!.metadata.get('x-meshlet-error')).toEqual(['MESHLET_UPSTREAM_CONNECT_FAILED']);
    } finally {
      client.close();
      await mesh.close();
    }
  });
});
