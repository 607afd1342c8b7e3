import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FRONTEND_ID, ordersPolicy } from '../sidecar/mesh-of-two.ts';
import { scrape, startTwoSidecars, total, viaFrontend, type TwoSidecars } from './two-sidecars.ts';

/**
 * Issue 13: meshlet_policy_audit_would_deny_total was documented and on no code path. In audit
 * mode every request enforcement would deny is allowed and counted there, by route
 * ("unmatched" when a default would have denied, as in every family).
 */
let two: TwoSidecars;
beforeAll(async () => {
  // orders' server in audit mode: nothing is denied, every would-be denial is counted.
  two = await startTwoSidecars({ ordersPolicy: (app, tcp) => ordersPolicy(app, tcp).replace('      selector: { serviceAccount: orders }\n', '      selector: { serviceAccount: orders }\n      mode: audit\n') });
});
afterAll(async () => {
  await two?.stop();
});

describe('meshlet_policy_audit_would_deny_total', () => {
  it('counts the requests audit mode allowed that enforcement would deny, by route', async () => {
    let m = await scrape(two.mesh.ports.ordersAdmin);
    expect(total(m, 'meshlet_policy_audit_would_deny_total', { route: 'admin' })).toBe(0);
    // frontend is not a caller of "admin"; no route matches /nothing.
    expect((await viaFrontend(two.mesh, 'orders.shop:80', '/admin/users')).status).toBe(200);
    expect((await viaFrontend(two.mesh, 'orders.shop:80', '/admin/users')).status).toBe(200);
    expect((await viaFrontend(two.mesh, 'orders.shop:80', '/nothing')).status).toBe(200);
    expect((await viaFrontend(two.mesh, 'orders.shop:80', '/orders/1')).status).toBe(200);
    m = await scrape(two.mesh.ports.ordersAdmin);
    expect(total(m, 'meshlet_policy_audit_would_deny_total', { route: 'admin' })).toBe(2);
    expect(total(m, 'meshlet_policy_audit_would_deny_total', { route: 'unmatched' })).toBe(1);
    expect(total(m, 'meshlet_policy_audit_would_deny_total')).toBe(3);
    // The same decisions, as the decision and request families see them.
    expect(total(m, 'meshlet_authz_decisions_total', { route: 'admin', caller: FRONTEND_ID, result: 'audit_would_deny' })).toBe(2);
    expect(total(m, 'meshlet_requests_total', { direction: 'inbound', route: 'admin', authz: 'audit_would_deny' })).toBe(2);
  });
});
