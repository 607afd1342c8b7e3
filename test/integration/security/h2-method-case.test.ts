import type * as http2 from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuthorizationDecision, RequestAuthorizer, RequestFacts } from '../../../src/data-plane/proxy/request-authorizer.ts';
import { ORDERS_AUTHORITY, startMeshPair, type MeshPair } from '../proxy/support/mesh-pair.ts';
import { rawExchange } from '../proxy/support/raw-exchange.ts';
import { connectInboundH2, connectOutboundH2, frontendTls, h2Request, recordHeads, recordUpgrades, type HeadSeen } from './support/recording-apps.ts';

/**
 * Issue 11, item 2: `:method: delete` over HTTP/2 missed a DELETE-only route, fell through to an
 * any-method route and reached the app verbatim; Flask and Django upper-case the method and run
 * the DELETE handler. Methods are case-sensitive (RFC 9110 §9.1): the sidecar refuses any method
 * that is not an upper-case token with 400 MESHLET_BAD_REQUEST on every protocol — HTTP/1.1 and
 * Upgrade get it from llhttp, which refuses every method it does not know — so what the policy
 * authorizes is exactly what the app acts on.
 */
class MethodRoutes implements RequestAuthorizer {
  readonly seen: RequestFacts[] = [];
  authorize(facts: RequestFacts): AuthorizationDecision {
    this.seen.push(facts);
    // A DELETE-only route that closes deletion, inside an any-method route (methods compared as
    // the policy compares them: exactly).
    if (facts.method === 'DELETE' && facts.path.startsWith('/orders/')) return { decision: 'deny', route: 'no-delete', reason: 'orders are never deleted' };
    return { decision: 'allow', route: 'any-method', reason: 'allowed' };
  }
}

const CASE_VARIANTS = ['delete', 'Delete', 'dElEtE', 'get', 'post'];

describe('lower-case HTTP/2 method bypasses method routes (issue 11 item 2)', () => {
  let mesh: MeshPair;
  let heads: HeadSeen[];
  let upgrades: HeadSeen[];
  let inboundH2: http2.ClientHttp2Session;
  let outboundH2: http2.ClientHttp2Session;
  const authorizer = new MethodRoutes();

  beforeAll(async () => {
    mesh = await startMeshPair({ authorizer });
    heads = recordHeads(mesh);
    upgrades = recordUpgrades(mesh);
    inboundH2 = connectInboundH2(mesh);
    outboundH2 = connectOutboundH2(mesh);
  });
  afterAll(async () => {
    inboundH2.close();
    outboundH2.close();
    await mesh.close();
  });

  it('the route works: DELETE is denied (403) and never reaches the app; POST is allowed', async () => {
    const before = heads.length;
    const denied = await h2Request(inboundH2, { ':method': 'DELETE', ':path': '/orders/1', ':authority': ORDERS_AUTHORITY });
    expect(denied.headers[':status']).toBe(403);
    expect(heads.length).toBe(before);
    const allowed = await h2Request(inboundH2, { ':method': 'POST', ':path': '/orders/1', ':authority': ORDERS_AUTHORITY });
    expect(allowed.headers[':status']).toBe(200);
    expect(heads.at(-1)!.method).toBe('POST');
  });

  for (const method of CASE_VARIANTS) {
    it(`inbound HTTP/2 :method ${method} -> 400 MESHLET_BAD_REQUEST, never authorized, never at the app`, async () => {
      const headsBefore = heads.length;
      const askedBefore = authorizer.seen.length;
      const refusedBefore = mesh.refused.length;
      const res = await h2Request(inboundH2, { ':method': method, ':path': '/orders/1', ':authority': ORDERS_AUTHORITY });
      expect(res.headers[':status']).toBe(400);
      expect(res.headers['x-meshlet-error']).toBe('MESHLET_BAD_REQUEST');
      expect(JSON.parse(res.body).error.message).toBe(`malformed request refused (:method "${method}" is not an upper-case token; methods are case-sensitive (RFC 9110 §9.1))`);
      expect(heads.length).toBe(headsBefore);
      expect(authorizer.seen.length).toBe(askedBefore);
      expect(mesh.refused.slice(refusedBefore)).toEqual([{ direction: 'inbound', code: 'MESHLET_BAD_REQUEST' }]);
    });
  }

  it('inbound gRPC stream with :method post -> trailers-only grpc-status 13 and MESHLET_BAD_REQUEST, app untouched', async () => {
    const before = heads.length;
    const res = await h2Request(inboundH2, { ':method': 'post', ':path': '/shop.Orders/Drop', ':authority': ORDERS_AUTHORITY, 'content-type': 'application/grpc', te: 'trailers' });
    expect(res.headers[':status']).toBe(200);
    expect(res.headers['grpc-status']).toBe('13');
    expect(res.headers['x-meshlet-error']).toBe('MESHLET_BAD_REQUEST');
    expect(heads.length).toBe(before);
  });

  it('outbound h2c :method delete -> 400 from the outbound sidecar, never sent to the peer', async () => {
    const headsBefore = heads.length;
    const askedBefore = authorizer.seen.length;
    const refusedBefore = mesh.refused.length;
    const res = await h2Request(outboundH2, { ':method': 'delete', ':path': '/orders/1', ':authority': ORDERS_AUTHORITY });
    expect(res.headers[':status']).toBe(400);
    expect(res.headers['x-meshlet-error']).toBe('MESHLET_BAD_REQUEST');
    expect(heads.length).toBe(headsBefore);
    expect(authorizer.seen.length).toBe(askedBefore);
    expect(mesh.refused.slice(refusedBefore)).toEqual([{ direction: 'outbound', code: 'MESHLET_BAD_REQUEST' }]);
  });

  it('an upper-case extension method (a token) passes, judged and forwarded as sent', async () => {
    const res = await h2Request(inboundH2, { ':method': 'PURGE', ':path': '/cache/1', ':authority': ORDERS_AUTHORITY });
    expect(res.headers[':status']).toBe(200);
    expect(heads.at(-1)!.method).toBe('PURGE');
    expect(authorizer.seen.at(-1)!.method).toBe('PURGE');
  });

  for (const [side, tlsOn] of [['inbound', true], ['outbound', false]] as const) {
    for (const method of ['delete', 'Delete']) {
      it(`${side} HTTP/1.1 ${method} -> 400 MESHLET_BAD_REQUEST from the strict parser, closed, app untouched`, async () => {
        const before = heads.length;
        const port = side === 'inbound' ? mesh.inboundPort : mesh.outboundPort;
        const out = await rawExchange(port, `${method} /orders/1 HTTP/1.1\r\nHost: ${ORDERS_AUTHORITY}\r\n\r\n`, tlsOn ? frontendTls(mesh) : undefined);
        expect(out.response).toMatch(/^HTTP\/1\.1 400 /);
        expect(out.response).toContain('x-meshlet-error: MESHLET_BAD_REQUEST');
        expect(out.response).toContain('HPE_INVALID_METHOD');
        expect(out.closed).toBe(true);
        expect(heads.length).toBe(before);
      });
    }

    it(`${side} HTTP/1.1 Upgrade with method get -> 400, never upgraded, app untouched`, async () => {
      const before = upgrades.length;
      const port = side === 'inbound' ? mesh.inboundPort : mesh.outboundPort;
      const head = `get /ws HTTP/1.1\r\nHost: ${ORDERS_AUTHORITY}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`;
      const out = await rawExchange(port, head, tlsOn ? frontendTls(mesh) : undefined);
      expect(out.response).toMatch(/^HTTP\/1\.1 400 /);
      expect(out.response).toContain('x-meshlet-error: MESHLET_BAD_REQUEST');
      expect(out.closed).toBe(true);
      expect(upgrades.length).toBe(before);
    });
  }

  it('the policy was only ever asked about upper-case methods', () => {
    expect(authorizer.seen.length).toBeGreaterThan(0);
    for (const facts of authorizer.seen) expect(facts.method).toMatch(/^[A-Z]+$/);
  });
});
