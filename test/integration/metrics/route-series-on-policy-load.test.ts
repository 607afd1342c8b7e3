import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FRONTEND_ID, ordersPolicy } from '../sidecar/mesh-of-two.ts';
import { matching, scrape, startTwoSidecars, total, viaFrontend, type TwoSidecars } from './two-sidecars.ts';

/**
 * Issue 13: a route's request series appeared only with its first request, so rate() missed a
 * new route's first errors (a series born at 1 shows no increase). They exist at 0 as soon as
 * the policy that declares the route is applied — at start and on every reload.
 */
let two: TwoSidecars;
beforeAll(async () => {
  two = await startTwoSidecars();
});
afterAll(async () => {
  await two?.stop();
});

const errorsOf = (route: string, method: string) => ({ direction: 'inbound', route, peer: FRONTEND_ID, method, status_class: '5xx', grpc_status: 'none', authz: 'allow' });

describe('the series of a policy route', () => {
  it('exist at 0 before any request, errors included', async () => {
    const m = await scrape(two.mesh.ports.ordersAdmin);
    expect(matching(m, 'meshlet_requests_total', errorsOf('list-orders', 'GET')).map((s) => s.value)).toEqual([0]);
    expect(matching(m, 'meshlet_requests_total', { ...errorsOf('list-orders', 'GET'), status_class: '2xx' }).map((s) => s.value)).toEqual([0]);
    expect(matching(m, 'meshlet_request_duration_seconds_count', errorsOf('list-orders', 'GET')).map((s) => s.value)).toEqual([0]);
    expect(matching(m, 'meshlet_authz_decisions_total', { route: 'list-orders', caller: FRONTEND_ID }).map((s) => `${s.labels.result}=${s.value}`).sort()).toEqual(['allow=0', 'audit_would_deny=0', 'deny=0']);
    // A route without methods gets GET and POST; a route of an opaque TCP port, decisions only.
    expect(matching(m, 'meshlet_authz_decisions_total', { route: 'ledger-stream', caller: FRONTEND_ID })).toHaveLength(3);
    expect(matching(m, 'meshlet_requests_total', { route: 'ledger-stream' })).toEqual([]);
  });

  it('of a route a reload adds exist at 0 once it is applied, and count from there', async () => {
    const withNewRoute = `${ordersPolicy(two.mesh.appPort, two.mesh.tcpAppPort)}        - name: new-route
          path: { prefix: /new }
          callers:
            - spiffeId: ${FRONTEND_ID}
`;
    await two.setOrdersPolicy(withNewRoute);
    let m = await scrape(two.mesh.ports.ordersAdmin);
    for (const method of ['GET', 'POST']) expect(matching(m, 'meshlet_requests_total', errorsOf('new-route', method)).map((s) => s.value)).toEqual([0]);
    expect((await viaFrontend(two.mesh, 'orders.shop:80', '/new/thing')).status).toBe(200);
    m = await scrape(two.mesh.ports.ordersAdmin);
    expect(total(m, 'meshlet_requests_total', { ...errorsOf('new-route', 'GET'), status_class: '2xx' })).toBe(1);
  });
});
