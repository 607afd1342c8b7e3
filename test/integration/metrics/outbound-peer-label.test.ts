import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ORDERS_ID } from '../sidecar/mesh-of-two.ts';
import { h2ViaFrontend, matching, scrape, startTwoSidecars, total, viaFrontend, type TwoSidecars } from './two-sidecars.ts';

/**
 * Issue 13: every outbound request was labelled peer="unauthenticated". The peer of an outbound
 * request is the server: the SPIFFE ID the next hop's mTLS handshake verified.
 */
let two: TwoSidecars;
beforeAll(async () => {
  two = await startTwoSidecars();
});
afterAll(async () => {
  await two?.stop();
});

describe('the peer label of outbound requests', () => {
  it('is the verified server identity, over HTTP/1.1 and HTTP/2', async () => {
    expect((await viaFrontend(two.mesh, 'orders.shop:80', '/orders/1')).status).toBe(200);
    expect(await h2ViaFrontend(two.mesh, 'orders.shop:80', '/orders/2')).toBe(200);
    const m = await scrape(two.mesh.ports.frontendAdmin);
    expect(total(m, 'meshlet_requests_total', { direction: 'outbound', peer: ORDERS_ID, status_class: '2xx' })).toBe(2);
    expect(matching(m, 'meshlet_requests_total', { direction: 'outbound', peer: 'unauthenticated' }).filter((s) => s.value > 0)).toEqual([]);
  });

  it('is "unauthenticated" for a plaintext destination, "unknown" when no next hop was reached', async () => {
    expect((await viaFrontend(two.mesh, `127.0.0.1:${two.mesh.appPort}`, '/plain')).status).toBe(200);
    // Not a known destination: refused before any next hop (503 or 502, by how the name fails).
    expect((await viaFrontend(two.mesh, 'nowhere.shop:80', '/x')).status).toBeGreaterThanOrEqual(502);
    const m = await scrape(two.mesh.ports.frontendAdmin);
    expect(total(m, 'meshlet_requests_total', { direction: 'outbound', peer: 'unauthenticated', status_class: '2xx' })).toBe(1);
    expect(total(m, 'meshlet_requests_total', { direction: 'outbound', peer: 'unknown', status_class: '5xx' })).toBe(1);
  });
});
