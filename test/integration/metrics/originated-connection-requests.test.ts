import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConnectionSnapshot } from '../../../src/data-plane/proxy/connection-registry.ts';
import { ORDERS_ID } from '../sidecar/mesh-of-two.ts';
import { cells, meshlet } from '../metrics-cli/support.ts';
import { h2ViaFrontend, startTwoSidecars, viaFrontend, type TwoSidecars } from './two-sidecars.ts';

/**
 * Issue 13: the connections the sidecar originates (its pooled HTTP/1.1 connections, its HTTP/2
 * sessions) showed `requests: 0` in /connections and `meshlet connections`.
 */
let two: TwoSidecars;
beforeAll(async () => {
  two = await startTwoSidecars();
});
afterAll(async () => {
  await two?.stop();
});

async function connections(adminPort: number): Promise<ConnectionSnapshot[]> {
  return ((await (await fetch(`http://127.0.0.1:${adminPort}/connections`)).json()) as { connections: ConnectionSnapshot[] }).connections;
}

const originatedRequests = (list: ConnectionSnapshot[], direction: string) => list.filter((c) => c.role === 'originated' && c.direction === direction).reduce((a, c) => a + c.requests, 0);

describe('requests on originated connections', () => {
  it('are counted on the pooled HTTP/1.1 connections and the HTTP/2 session, both sidecars', async () => {
    for (const n of [1, 2, 3]) expect((await viaFrontend(two.mesh, 'orders.shop:80', `/orders/${n}`)).status).toBe(200);
    expect(await h2ViaFrontend(two.mesh, 'orders.shop:80', '/orders/4')).toBe(200);
    const frontend = await connections(two.mesh.ports.frontendAdmin);
    // Toward orders: one keep-alive HTTP/1.1 connection carried 3, the h2 session 1.
    const toOrders = frontend.filter((c) => c.role === 'originated' && c.peerIdentity === ORDERS_ID);
    expect(toOrders.map((c) => c.requests).sort()).toEqual([1, 3]);
    // orders' side: every request reached the app over its originated connections.
    expect(originatedRequests(await connections(two.mesh.ports.ordersAdmin), 'inbound')).toBe(4);

    const table = await meshlet('connections', '--admin', `http://127.0.0.1:${two.mesh.ports.frontendAdmin}`);
    expect(table.status).toBe(0);
    const rows = table.stdout.trimEnd().split('\n').slice(1).map(cells).filter((r) => r[2] === 'originated' && r[3] === ORDERS_ID);
    expect(rows.map((r) => r[8]).sort()).toEqual(['1', '3']);
  });
});
