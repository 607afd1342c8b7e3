import * as http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IDS, request } from './support/mesh-fixture.ts';
import { ORDERS_AUTHORITY, startMeshPair, type MeshPair } from './support/mesh-pair.ts';

function headerNames(raw: string[]): string[] {
  return raw.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
}

describe('identity and hop-by-hop headers', () => {
  let mesh: MeshPair;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  beforeAll(async () => {
    mesh = await startMeshPair();
  });
  afterAll(async () => {
    agent.destroy();
    await mesh.close();
  });

  it('replaces every caller-sent copy of the identity header (any case) with the verified SPIFFE ID', async () => {
    const res = await request(mesh.outboundPort, {
      path: '/whoami',
      headers: ['Host', ORDERS_AUTHORITY, 'X-Meshlet-Peer-Identity', IDS.orders, 'x-meshlet-peer-identity', 'spiffe://evil.example/admin'],
      agent,
    });
    expect(res.status).toBe(200);
    const saw = mesh.appSaw.at(-1)!;
    const values = saw.rawHeaders.filter((_, i) => i % 2 === 1 && saw.rawHeaders[i - 1]!.toLowerCase() === 'x-meshlet-peer-identity');
    expect(values).toEqual([IDS.frontend]);
  });

  // CVE-2024-45614 class: CGI-style servers read `_` as `-` (test/integration/security has the
  // per-protocol cases: HTTP/2 heads and trailers, Upgrade, gRPC, chunked trailers).
  it('drops every `_` spelling of the identity header too: a CGI-style app reads exactly one, the verified ID', async () => {
    const res = await request(mesh.outboundPort, {
      path: '/whoami',
      headers: ['Host', ORDERS_AUTHORITY, 'x_meshlet_peer_identity', IDS.orders, 'X_Meshlet_Peer_Identity', IDS.imposter, 'x-meshlet_peer-identity', 'spiffe://evil.example/admin'],
      agent,
    });
    expect(res.status).toBe(200);
    const raw = mesh.appSaw.at(-1)!.rawHeaders;
    const cgi = raw.filter((_, i) => i % 2 === 1 && raw[i - 1]!.toUpperCase().replaceAll('-', '_') === 'X_MESHLET_PEER_IDENTITY');
    expect(cgi).toEqual([IDS.frontend]);
  });

  it('strips hop-by-hop headers and every header the Connection header names, keeps end-to-end ones', async () => {
    const res = await request(mesh.outboundPort, {
      path: '/hop',
      headers: [
        'Host', ORDERS_AUTHORITY,
        'Connection', 'keep-alive, X-Secret-Hop, x-meshlet-peer-identity',
        'X-Secret-Hop', 'should not pass',
        'Keep-Alive', 'timeout=5',
        'Proxy-Authorization', 'Basic Zm9vOmJhcg==',
        'TE', 'trailers',
        'Upgrade-Insecure-Requests', '1',
        'X-End-To-End', 'kept',
      ],
      agent,
    });
    expect(res.status).toBe(200);
    const names = headerNames(mesh.appSaw.at(-1)!.rawHeaders);
    for (const gone of ['x-secret-hop', 'keep-alive', 'proxy-authorization', 'te']) expect(names).not.toContain(gone);
    expect(names).toContain('x-end-to-end');
    expect(names).toContain('upgrade-insecure-requests');
    // Naming the identity header in Connection must not remove the one the inbound sidecar sets.
    expect(JSON.parse(res.body).headers['x-meshlet-peer-identity']).toBe(IDS.frontend);
  });

  it('strips hop-by-hop headers from the response too', async () => {
    mesh.setHandler((_req, res) => {
      res.writeHead(200, [
        'Connection', 'X-Internal-Hop',
        'X-Internal-Hop', 'secret',
        'Keep-Alive', 'timeout=1000',
        'Proxy-Authenticate', 'Basic',
        'X-Kept', 'yes',
        'Content-Length', '2',
      ]);
      res.end('ok');
    });
    try {
      const res = await request(mesh.outboundPort, { path: '/r', headers: { host: ORDERS_AUTHORITY }, agent });
      expect(res.status).toBe(200);
      expect(res.body).toBe('ok');
      expect(res.headers['x-internal-hop']).toBeUndefined();
      expect(res.headers['proxy-authenticate']).toBeUndefined();
      expect(res.headers['x-kept']).toBe('yes');
      expect(res.headers['keep-alive']).not.toBe('timeout=1000');
    } finally {
      mesh.resetHandler();
    }
  });
});
