import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FRONTEND_ID } from '../sidecar/mesh-of-two.ts';
import { matching, scrape, startTwoSidecars, total, viaFrontend, type TwoSidecars } from './two-sidecars.ts';

/**
 * Issue 13: a request a server's default decided was route="none" in meshlet_requests_total
 * but route="unmatched" in meshlet_authz_decisions_total. One value everywhere: "unmatched".
 */
let two: TwoSidecars;
beforeAll(async () => {
  two = await startTwoSidecars();
});
afterAll(async () => {
  await two?.stop();
});

describe('the route label of a request no route matched', () => {
  it('is "unmatched" in the request and the decision families alike', async () => {
    // orders' policy has no route for /nothing; the default (deny) decides.
    expect((await viaFrontend(two.mesh, 'orders.shop:80', '/nothing')).status).toBe(403);
    const m = await scrape(two.mesh.ports.ordersAdmin);
    expect(total(m, 'meshlet_authz_decisions_total', { route: 'unmatched', caller: FRONTEND_ID, result: 'deny' })).toBe(1);
    expect(total(m, 'meshlet_requests_total', { direction: 'inbound', route: 'unmatched', peer: FRONTEND_ID, authz: 'deny', status_class: '4xx' })).toBe(1);
    expect(matching(m, 'meshlet_requests_total', { direction: 'inbound', route: 'none' })).toEqual([]);
  });
});
