import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FRONTEND_ID } from '../sidecar/mesh-of-two.ts';
import { rawExchange, scrape, startTwoSidecars, total, type TwoSidecars } from './two-sidecars.ts';

/**
 * Issue 13: meshlet_request_bytes_total counted no request heads, and its HELP said "body bytes"
 * while the docs said wire bytes. They count the HTTP/1.1 bytes of the client connection,
 * heads included (docs/metrics.md): exactly what the client sent and received.
 */
let two: TwoSidecars;
beforeAll(async () => {
  two = await startTwoSidecars();
});
afterAll(async () => {
  await two?.stop();
});

describe('meshlet_request_bytes_total and meshlet_response_bytes_total', () => {
  it('count every byte of the request and the response, heads included', async () => {
    const body = 'a body of 23 bytes.....';
    const raw = `GET http://orders.shop:80/orders/7 HTTP/1.1\r\nhost: orders.shop:80\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`;
    const { sent, received } = await rawExchange(two.mesh.ports.frontendOutbound, raw);
    expect(received.toString('latin1')).toMatch(/^HTTP\/1\.1 200 /);
    const frontend = await scrape(two.mesh.ports.frontendAdmin);
    // The app's plaintext connection to frontend's outbound listener: exactly the bytes that crossed.
    expect(total(frontend, 'meshlet_request_bytes_total', { direction: 'outbound' })).toBe(sent);
    expect(total(frontend, 'meshlet_response_bytes_total', { direction: 'outbound' })).toBe(received.length);
    // orders' inbound (mTLS, decrypted bytes): every byte of frontend's connection is one request's.
    const orders = await scrape(two.mesh.ports.ordersAdmin);
    const inboundRequestBytes = total(orders, 'meshlet_request_bytes_total', { direction: 'inbound', peer: FRONTEND_ID });
    expect(inboundRequestBytes).toBeGreaterThan(body.length + 'GET /orders/7 HTTP/1.1\r\n'.length);
    expect(inboundRequestBytes).toBe(total(orders, 'meshlet_tcp_read_bytes_total', { direction: 'inbound', peer: FRONTEND_ID }));
    expect(total(orders, 'meshlet_response_bytes_total', { direction: 'inbound', peer: FRONTEND_ID })).toBe(total(orders, 'meshlet_tcp_written_bytes_total', { direction: 'inbound', peer: FRONTEND_ID }));
  });
});
