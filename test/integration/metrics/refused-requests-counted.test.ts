import * as tls from 'node:tls';
import * as http2 from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FRONTEND_ID, svidFiles } from '../sidecar/mesh-of-two.ts';
import { rawExchange, scrape, startTwoSidecars, total, type TwoSidecars } from './two-sidecars.ts';

/**
 * Issue 13: docs/metrics.md promises that meshlet_requests_total counts every request the
 * sidecar answered itself, with route="none" when it was refused before the policy ran (a
 * malformed head, too many fields). The six hand-wired handlers observed at different points:
 * inbound, a malformed head or an over-long field list was answered and never counted;
 * outbound, the field-count refusal was not either. The pipeline observes every request from
 * its head on; these fail on the handlers it replaced.
 */
let two: TwoSidecars;
beforeAll(async () => {
  two = await startTwoSidecars();
});
afterAll(async () => {
  await two?.stop();
});

/** One raw HTTP/1.1 request to orders' inbound listener over mTLS as frontend; the response's status. */
async function mtlsRaw(raw: string): Promise<number> {
  const files = await svidFiles(two.mesh.ca, FRONTEND_ID);
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port: two.mesh.ports.ordersInbound,
      cert: files['tls.crt'],
      key: files['tls.key'],
      ca: files['ca.crt'],
      ALPNProtocols: ['http/1.1'],
      checkServerIdentity: () => undefined,
    });
    let text = '';
    socket.setEncoding('latin1');
    socket.on('secureConnect', () => socket.write(raw));
    socket.on('data', (d: string) => (text += d));
    socket.on('error', reject);
    socket.on('close', () => resolve(Number(text.slice(9, 12))));
  });
}

describe('requests refused before the policy ran are counted, route "none"', () => {
  it('inbound HTTP/1.1: two Host fields (400)', async () => {
    const status = await mtlsRaw('GET /api/orders HTTP/1.1\r\nhost: orders\r\nhost: other\r\nconnection: close\r\n\r\n');
    expect(status).toBe(400);
    const m = await scrape(two.mesh.ports.ordersAdmin);
    expect(total(m, 'meshlet_requests_total', { direction: 'inbound', peer: FRONTEND_ID, route: 'none', authz: 'none', status_class: '4xx' })).toBe(1);
    expect(total(m, 'meshlet_proxy_refusals_total', { direction: 'inbound', code: 'MESHLET_BAD_REQUEST' })).toBe(1);
  });

  it('inbound HTTP/2: a lower-case method (400)', async () => {
    const files = await svidFiles(two.mesh.ca, FRONTEND_ID);
    const session = http2.connect(`https://127.0.0.1:${two.mesh.ports.ordersInbound}`, { cert: files['tls.crt'], key: files['tls.key'], ca: files['ca.crt'], checkServerIdentity: () => undefined });
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const stream = session.request({ ':method': 'delete', ':path': '/api/orders', ':authority': 'orders' });
        stream.on('response', (h) => resolve(Number(h[':status'])));
        stream.on('error', reject);
        stream.resume();
      });
      expect(status).toBe(400);
    } finally {
      session.close();
    }
    const m = await scrape(two.mesh.ports.ordersAdmin);
    expect(total(m, 'meshlet_requests_total', { direction: 'inbound', peer: FRONTEND_ID, route: 'none', method: 'other', status_class: '4xx' })
      + total(m, 'meshlet_requests_total', { direction: 'inbound', peer: FRONTEND_ID, route: 'none', method: 'delete', status_class: '4xx' })).toBe(1);
  });

  it('outbound HTTP/1.1: one field more than MESHLET_MAX_HEADERS (431)', async () => {
    const fields = Array.from({ length: 99 }, (_, i) => `x-f${i}: v\r\n`).join('');
    const { received } = await rawExchange(two.mesh.ports.frontendOutbound, `GET http://orders.shop:80/api/orders HTTP/1.1\r\nhost: orders.shop:80\r\n${fields}connection: close\r\n\r\n`);
    expect(received.toString('latin1').slice(9, 12)).toBe('431');
    const m = await scrape(two.mesh.ports.frontendAdmin);
    expect(total(m, 'meshlet_proxy_refusals_total', { direction: 'outbound', code: 'MESHLET_TOO_MANY_HEADERS' })).toBe(1);
    expect(total(m, 'meshlet_requests_total', { direction: 'outbound', route: 'none', status_class: '4xx' })).toBe(1);
  });
});
