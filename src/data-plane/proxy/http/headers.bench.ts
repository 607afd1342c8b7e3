/**
 * Micro-benchmark of the per-request header scans: `node src/data-plane/proxy/http/headers.bench.ts [N]`.
 * @bench-quick-args 100000
 * Prints ns per call for:
 *  - forwardHeaders:    an HTTP/1.1 head of 12 fields as a service client sends it (node's rawHeaders)
 *  - readStreamRequest: an HTTP/2 head of 4 pseudo-headers and 8 fields (node:http2's raw list)
 * Both run on every request; the bench exists to show what the smuggling, method and identity
 * checks (issue 11) cost them.
 */
import { readStreamRequest } from '../h2/stream-headers.ts';
import { forwardHeaders, PEER_IDENTITY_HEADER } from './headers.ts';

const N = Number(process.argv[2] ?? 2_000_000);

const HTTP1: string[] = [
  'Host', 'orders.shop.svc.cluster.local:8080',
  'User-Agent', 'orders-client/1.4.2 node/24',
  'Accept', 'application/json',
  'Accept-Encoding', 'gzip, deflate, br',
  'Content-Type', 'application/json',
  'Content-Length', '142',
  'X-Request-Id', '6f1c2d6e-58b4-4c1e-9a6c-0d8c2b7f1e11',
  'Traceparent', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
  'Authorization', 'Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJmcm9udGVuZCJ9.sig',
  'Connection', 'keep-alive',
  'X-Tenant', 'acme',
  'Cookie', 'session=abc123',
];

const H2: string[] = [
  ':method', 'POST',
  ':path', '/shop.Orders/Get',
  ':scheme', 'http',
  ':authority', 'orders.shop.svc.cluster.local:8080',
  'content-type', 'application/grpc',
  'te', 'trailers',
  'user-agent', 'grpc-node-js/1.12.0',
  'grpc-accept-encoding', 'identity,deflate,gzip',
  'accept-encoding', 'identity',
  'grpc-timeout', '4999m',
  'x-request-id', '6f1c2d6e-58b4-4c1e-9a6c-0d8c2b7f1e11',
  'traceparent', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
];

let sink = 0;
function nsPer(fn: () => number): number {
  for (let i = 0; i < 200_000; i++) sink += fn(); // warm up (JIT)
  const start = process.hrtime.bigint();
  for (let i = 0; i < N; i++) sink += fn();
  return Number(process.hrtime.bigint() - start) / N;
}

const http1 = nsPer(() => forwardHeaders(HTTP1, PEER_IDENTITY_HEADER).headers.length);
const h2 = nsPer(() => readStreamRequest(H2, PEER_IDENTITY_HEADER).fields.length);

console.log(JSON.stringify({ iterations: N, nsPerCall: { forwardHeaders: +http1.toFixed(1), readStreamRequest: +h2.toFixed(1) }, sink: sink > 0 }));
