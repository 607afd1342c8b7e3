import * as http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IDS, request } from './support/mesh-fixture.ts';
import { ORDERS_AUTHORITY, startMeshPair, type MeshPair } from './support/mesh-pair.ts';
import { DenyByPathAuthorizer } from './support/stand-in-policy.ts';

describe('inbound authorization', () => {
  let mesh: MeshPair;
  const authorizer = new DenyByPathAuthorizer(['/admin'], { record: true });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  beforeAll(async () => {
    mesh = await startMeshPair({ authorizer });
  });
  afterAll(async () => {
    agent.destroy();
    await mesh.close();
  });

  it('asks the authorizer with the verified peer, app port, method and normalized path', async () => {
    const res = await request(mesh.outboundPort, { method: 'DELETE', path: '/orders/9?force=1', headers: { host: ORDERS_AUTHORITY }, agent });
    expect(res.status).toBe(200);
    expect(authorizer.seen!.at(-1)).toEqual({ peer: IDS.frontend, port: mesh.appPort, method: 'DELETE', path: '/orders/9', grpc: undefined });
  });

  it('answers a denied request with 403 JSON naming route and reason; the app never sees it', async () => {
    const before = mesh.appSaw.length;
    const res = await request(mesh.outboundPort, { method: 'POST', path: '/admin/drop', headers: { host: ORDERS_AUTHORITY, 'content-length': 5 }, body: 'hello', agent });
    expect(res.status).toBe(403);
    expect(res.headers['x-meshlet-error']).toBe('MESHLET_DENIED');
    expect(res.headers['content-type']).toBe('application/json');
    expect(JSON.parse(res.body)).toEqual({ error: { code: 'MESHLET_DENIED', message: 'request denied by policy', route: 'deny-/admin', reason: '/admin is denied to every caller' } });
    expect(mesh.appSaw.length).toBe(before);
    expect(mesh.refused).toContainEqual({ direction: 'inbound', code: 'MESHLET_DENIED' });
    // The connection stays usable after a denial.
    const next = await request(mesh.outboundPort, { path: '/orders', headers: { host: ORDERS_AUTHORITY }, agent });
    expect(next.status).toBe(200);
  });

  it('refuses a path the normalizer rejects (dot segments) with 400 before policy is asked', async () => {
    const asked = authorizer.seen!.length;
    const res = await request(mesh.outboundPort, { path: '/public/../admin/drop', headers: { host: ORDERS_AUTHORITY }, agent });
    expect(res.status).toBe(400);
    expect(res.headers['x-meshlet-error']).toBe('MESHLET_BAD_PATH');
    expect(authorizer.seen!.length).toBe(asked);
  });

  it('passes gRPC service and method to the authorizer', async () => {
    await request(mesh.outboundPort, { method: 'POST', path: '/shop.Orders/Get', headers: { host: ORDERS_AUTHORITY, 'content-type': 'application/grpc+proto', 'content-length': 0 }, agent });
    expect(authorizer.seen!.at(-1)!.grpc).toEqual({ service: 'shop.Orders', method: 'Get' });
  });
});
