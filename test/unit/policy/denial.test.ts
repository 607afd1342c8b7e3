import { describe, expect, it } from 'vitest';
import { badPathResponse, denialResponse, encodeGrpcMessage } from '../../../src/policy/denial.ts';
import { compilePolicy } from '../../../src/policy/compile.ts';
import { decide } from '../../../src/policy/decide.ts';
import { normalizePath } from '../../../src/policy/normalize-path.ts';
import { parsePolicy } from '../../../src/policy/parse.ts';

const r = parsePolicy(`apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
spec:
  servers:
    - name: api
      selector: { serviceAccount: api }
      ports: [{ port: 8080, protocol: http }]
      routes:
        - { name: admin, path: { prefix: /admin }, callers: [] }
`);
if (!r.ok) throw new Error('fixture invalid');
const compiled = compilePolicy(r.policy, { self: { namespace: 'a', serviceAccount: 'api' }, meshDefault: 'deny' });
const denied = decide(compiled, { peer: 'spiffe://cluster.local/ns/x/sa/y', port: 8080, method: 'GET', path: '/admin' });
const byDefault = decide(compiled, { peer: 'spiffe://cluster.local/ns/x/sa/y', port: 8080, method: 'GET', path: '/other' });

describe('denialResponse', () => {
  it('HTTP: 403 with a JSON body naming the route and the reason', () => {
    const res = denialResponse(denied, 'http');
    expect(res.status).toBe(403);
    expect(res.headers['content-type']).toBe('application/json');
    expect(Number(res.headers['content-length'])).toBe(Buffer.byteLength(res.body));
    expect(JSON.parse(res.body)).toEqual({ error: 'forbidden', route: 'admin', reason: 'caller is not authorized by route "admin"' });
  });

  it('HTTP: route is null when a default denied', () => {
    expect(JSON.parse(denialResponse(byDefault, 'http').body)).toMatchObject({ error: 'forbidden', route: null });
  });

  it('gRPC: trailers-only, HTTP/2 status 200, grpc-status 7, percent-encoded message, no body', () => {
    const res = denialResponse(denied, 'grpc');
    expect(res.status).toBe(200);
    expect(res.body).toBe('');
    expect(res.headers['content-type']).toBe('application/grpc');
    expect(res.headers['grpc-status']).toBe('7');
    expect(decodeURIComponent(res.headers['grpc-message']!)).toBe(denied.reason);
  });

  it('is built once per decision and reused', () => {
    expect(denialResponse(denied, 'http')).toBe(denialResponse(denied, 'http'));
    expect(denialResponse(denied, 'grpc')).not.toBe(denialResponse(denied, 'http'));
  });
});

describe('encodeGrpcMessage', () => {
  it('percent-encodes "%", non-printable and non-ASCII bytes only', () => {
    expect(encodeGrpcMessage('a b"c')).toBe('a b"c');
    expect(encodeGrpcMessage('100%')).toBe('100%25');
    expect(encodeGrpcMessage('é\n')).toBe('%C3%A9%0A');
  });
});

describe('badPathResponse', () => {
  it('HTTP 400 with the refusal code; gRPC INVALID_ARGUMENT', () => {
    const n = normalizePath('/a%2Fb');
    if (n.ok) throw new Error('expected a refusal');
    const http = badPathResponse(n, 'http');
    expect(http.status).toBe(400);
    expect(JSON.parse(http.body)).toEqual({ error: 'bad_request', code: 'PATH_ENCODED_SLASH', reason: n.reason });
    expect(badPathResponse(n, 'grpc').headers['grpc-status']).toBe('3');
  });
});
