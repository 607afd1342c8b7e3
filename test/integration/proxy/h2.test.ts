import { createHash, randomBytes } from 'node:crypto';
import * as http2 from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IDS } from './support/mesh-fixture.ts';
import { ORDERS_AUTHORITY, startMeshPair, type MeshPair } from './support/mesh-pair.ts';

interface H2Response {
  headers: http2.IncomingHttpHeaders;
  body: Buffer;
  trailers: http2.IncomingHttpHeaders | null;
}

function h2request(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: Buffer): Promise<H2Response> {
  return new Promise((resolve, reject) => {
    const req = session.request(headers, { endStream: body === undefined });
    let head: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders | null = null;
    const chunks: Buffer[] = [];
    req.on('response', (h) => (head = h));
    req.on('trailers', (t) => (trailers = t));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve({ headers: head, body: Buffer.concat(chunks), trailers }));
    req.on('error', reject);
    if (body !== undefined) req.end(body);
  });
}

describe('HTTP/2 (not gRPC) through the mesh: h2c from the app, h2 between sidecars, HTTP/1.1 to an http-port app', () => {
  let mesh: MeshPair;
  let session: http2.ClientHttp2Session;
  beforeAll(async () => {
    mesh = await startMeshPair();
    session = http2.connect(`http://127.0.0.1:${mesh.outboundPort}`);
  });
  afterAll(async () => {
    session.close();
    await mesh.close();
  });

  it('a GET reaches the app with :authority as Host and the verified caller; a forged identity is dropped', async () => {
    const res = await h2request(session, { ':path': '/orders/1?x=y', ':authority': ORDERS_AUTHORITY, 'x-meshlet-peer-identity': IDS.imposter, cookie: ['a=1', 'b=2'] });
    expect(res.headers[':status']).toBe(200);
    const echo = JSON.parse(res.body.toString());
    expect(echo.method).toBe('GET');
    expect(echo.url).toBe('/orders/1?x=y');
    expect(echo.headers.host).toBe(ORDERS_AUTHORITY);
    expect(echo.headers['x-meshlet-peer-identity']).toBe(IDS.frontend);
    // RFC 9113 §8.2.3: split cookie fields are joined again for HTTP/1.1.
    expect(echo.headers.cookie).toBe('a=1; b=2');
  });

  it('bodies stream both ways byte for byte, and HTTP/1.1 trailers from the app arrive as HTTP/2 trailers', async () => {
    mesh.setHandler((req, res) => {
      const hash = createHash('sha256');
      req.on('data', (c: Buffer) => hash.update(c));
      req.on('end', () => {
        const digest = hash.digest('hex');
        res.writeHead(200, { 'content-type': 'application/octet-stream', trailer: 'x-request-sha256' });
        res.write(Buffer.alloc(3 * 1024 * 1024, 7));
        res.addTrailers({ 'x-request-sha256': digest });
        res.end();
      });
    });
    try {
      const body = randomBytes(2 * 1024 * 1024 + 17);
      const res = await h2request(session, { ':method': 'POST', ':path': '/upload', ':authority': ORDERS_AUTHORITY }, body);
      expect(res.headers[':status']).toBe(200);
      expect(res.body.equals(Buffer.alloc(3 * 1024 * 1024, 7))).toBe(true);
      expect(res.trailers?.['x-request-sha256']).toBe(createHash('sha256').update(body).digest('hex'));
    } finally {
      mesh.resetHandler();
    }
  });

  it('concurrent streams share ONE mTLS connection between the sidecars (multiplexed)', async () => {
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => h2request(session, { ':path': `/n/${i}`, ':authority': ORDERS_AUTHORITY })));
    expect(results.map((r) => JSON.parse(r.body.toString()).url)).toEqual(Array.from({ length: 20 }, (_, i) => `/n/${i}`));
    const toPeer = mesh.outbound.registry.list().filter((c) => c.role === 'originated' && c.remotePort === mesh.inboundPort);
    expect(toPeer).toHaveLength(1);
  });

  it('a denied stream gets 403 JSON naming route and reason; the app never sees it; the session stays usable', async () => {
    const before = mesh.appSaw.length;
    const res = await h2request(session, { ':method': 'POST', ':path': '/admin/drop', ':authority': ORDERS_AUTHORITY }, Buffer.from('x'));
    expect(res.headers[':status']).toBe(403);
    expect(res.headers['x-meshlet-error']).toBe('MESHLET_DENIED');
    expect(JSON.parse(res.body.toString())).toEqual({ error: { code: 'MESHLET_DENIED', message: 'request denied by policy', route: 'deny-/admin', reason: '/admin is denied to every caller' } });
    expect(mesh.appSaw.length).toBe(before);
    expect((await h2request(session, { ':path': '/ok', ':authority': ORDERS_AUTHORITY })).headers[':status']).toBe(200);
  });

  it('a path with dot segments is refused (400 MESHLET_BAD_PATH) before policy', async () => {
    const res = await h2request(session, { ':path': '/public/../admin', ':authority': ORDERS_AUTHORITY });
    expect(res.headers[':status']).toBe(400);
    expect(res.headers['x-meshlet-error']).toBe('MESHLET_BAD_PATH');
  });

  it('an unknown :authority is refused by the outbound sidecar (502 MESHLET_UNKNOWN_DESTINATION)', async () => {
    const res = await h2request(session, { ':path': '/', ':authority': 'payments.shop.svc.cluster.local:8080' });
    expect(res.headers[':status']).toBe(502);
    expect(res.headers['x-meshlet-error']).toBe('MESHLET_UNKNOWN_DESTINATION');
  });
});

describe('HTTP/2 to an h2c app (a grpc port): trailers both ways', () => {
  let mesh: MeshPair;
  let app: http2.Http2Server;
  const appSaw: { trailers: http2.IncomingHttpHeaders | null; body: string; identity: unknown }[] = [];
  beforeAll(async () => {
    app = http2.createServer();
    app.on('stream', (stream, headers) => {
      const chunks: Buffer[] = [];
      let trailers: http2.IncomingHttpHeaders | null = null;
      stream.on('trailers', (t) => (trailers = t));
      stream.on('data', (c: Buffer) => chunks.push(c));
      // node:http2 emits 'trailers' on a later tick than 'end': answer once both are in.
      stream.on('end', () => setImmediate(() => {
        appSaw.push({ trailers, body: Buffer.concat(chunks).toString(), identity: headers['x-meshlet-peer-identity'] });
        stream.respond({ ':status': 200, 'content-type': 'text/plain' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'x-result': 'done', 'x-echo': String(trailers?.['x-checksum'] ?? 'none') }));
        stream.end('ok');
      }));
    });
    const appPort = await new Promise<number>((resolve) => app.listen(0, '127.0.0.1', () => resolve((app.address() as { port: number }).port)));
    mesh = await startMeshPair({ protocol: 'grpc', appPort });
  });
  afterAll(async () => {
    await mesh.close();
    await new Promise<void>((resolve) => app.close(() => resolve()));
  });

  it('request trailers reach the app and response trailers come back, through both sidecars', async () => {
    const session = http2.connect(`http://127.0.0.1:${mesh.outboundPort}`);
    try {
      const res = await new Promise<H2Response>((resolve, reject) => {
        const req = session.request({ ':method': 'POST', ':path': '/t', ':authority': ORDERS_AUTHORITY }, { waitForTrailers: true });
        req.on('wantTrailers', () => req.sendTrailers({ 'x-checksum': 'abc123' }));
        let head: http2.IncomingHttpHeaders = {};
        let trailers: http2.IncomingHttpHeaders | null = null;
        const chunks: Buffer[] = [];
        req.on('response', (h) => (head = h));
        req.on('trailers', (t) => (trailers = t));
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => resolve({ headers: head, body: Buffer.concat(chunks), trailers }));
        req.on('error', reject);
        req.end('payload');
      });
      expect(res.headers[':status']).toBe(200);
      expect(res.body.toString()).toBe('ok');
      expect(res.trailers).toMatchObject({ 'x-result': 'done', 'x-echo': 'abc123' });
      expect(appSaw.at(-1)).toMatchObject({ body: 'payload', trailers: { 'x-checksum': 'abc123' }, identity: IDS.frontend });
    } finally {
      session.close();
    }
  });
});
