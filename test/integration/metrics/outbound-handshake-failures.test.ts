import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { h2ViaFrontend, scrape, startTwoSidecars, total, viaFrontend, type TwoSidecars } from './two-sidecars.ts';

/**
 * Issue 13: a handshake the outbound side refused (the server is not the identity the
 * destination expects, an unknown CA, expired…) was not counted in
 * meshlet_tls_handshake_failures_total{direction="outbound"}, so the alert and the dashboard
 * panel built on it could never fire for the client side.
 */
let two: TwoSidecars;
beforeAll(async () => {
  two = await startTwoSidecars();
});
afterAll(async () => {
  await two?.stop();
});

describe('outbound handshake failures', () => {
  it('are counted by reason, once per refused handshake, over HTTP/1.1 and HTTP/2', async () => {
    // imposter.shop:80 is orders' sidecar, but the destination expects another identity.
    const res = await viaFrontend(two.mesh, 'imposter.shop:80', '/orders/1');
    expect(res.status).toBe(502);
    expect(res.body).toContain('MESHLET_UPSTREAM_IDENTITY_REJECTED');
    expect(await h2ViaFrontend(two.mesh, 'imposter.shop:80', '/orders/2')).toBe(502);
    const m = await scrape(two.mesh.ports.frontendAdmin);
    expect(total(m, 'meshlet_tls_handshake_failures_total', { direction: 'outbound', reason: 'wrong_identity' })).toBe(2);
    expect(total(m, 'meshlet_tls_handshake_failures_total', { direction: 'outbound' })).toBe(2);
  });
});
