import { Agent, request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConnectionSnapshot } from '../../../src/data-plane/proxy/connection-registry.ts';
import { formatRevocationList } from '../../../src/data-plane/identity/revocation/revocation-list.ts';
import { startSidecarProcess, type SidecarProcess } from '../security/sidecar-process.ts';
import { FRONTEND_ID, meshOfTwo, ORDERS_ID, type MeshOfTwo } from '../sidecar/mesh-of-two.ts';
import { kubeletWrite } from '../../support/kubelet-volume.ts';

/**
 * Revocation with real `meshlet sidecar` processes (issue 16 item 4; docs/revocation.md): two
 * pods on loopback, frontend -> orders, each sidecar with MESHLET_REVOCATION_LIST on a
 * kubelet-style ConfigMap directory. Revoking the caller in the server's list closes the
 * caller's open keep-alive connection and opaque TCP tunnel FROM THE SERVER SIDE, and its next
 * handshakes are refused (reason revoked); a malformed list keeps the revocation in force;
 * removing the entry re-admits it. Revoking the server in the caller's list closes the pooled
 * connection from the caller's side and refuses the next handshake. No restart anywhere.
 */
const KEY = 'revocations.json';
let mesh: MeshOfTwo;
let orders: SidecarProcess;
let frontend: SidecarProcess;
let ordersList: string;
let frontendList: string;
const agent = new Agent({ keepAlive: true, maxSockets: 1 });

const list = (...ids: string[]): string => formatRevocationList(ids.map((spiffeId) => ({ spiffeId, revokedAt: '2026-12-04T07:00:00Z', reason: 'test' })));

beforeAll(async () => {
  mesh = await meshOfTwo();
  ordersList = join(mesh.dir, 'orders-revocations');
  frontendList = join(mesh.dir, 'frontend-revocations');
  await kubeletWrite(ordersList, { [KEY]: list() });
  await kubeletWrite(frontendList, { [KEY]: list() });
  [orders, frontend] = await Promise.all([
    // info: the revocation lines of level info (loaded, unrevoked) are asserted too.
    startSidecarProcess({ ...mesh.ordersEnv, MESHLET_LOG_LEVEL: 'info', MESHLET_REVOCATION_LIST: join(ordersList, KEY) }),
    startSidecarProcess({ ...mesh.frontendEnv, MESHLET_LOG_LEVEL: 'info', MESHLET_REVOCATION_LIST: join(frontendList, KEY) }),
  ]);
}, 60_000);

afterAll(async () => {
  agent.destroy();
  await Promise.all([orders?.stop(), frontend?.stop()]);
  await mesh?.close();
});

function get(path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: mesh.ports.frontendOutbound, method: 'GET', path: `http://orders.shop:80${path}`, headers: { host: 'orders.shop:80' }, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function connections(adminPort: number): Promise<ConnectionSnapshot[]> {
  return ((await (await fetch(`http://127.0.0.1:${adminPort}/connections`)).json()) as { connections: ConnectionSnapshot[] }).connections;
}

/** The value of one series of the sidecar's /metrics (NaN when absent). */
async function metric(adminPort: number, series: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? Number.NaN : Number(line.slice(series.length + 1));
}

/** Polls an async check; no fixed sleeps (a loaded machine only makes it slower). */
async function eventually(check: () => Promise<boolean>, what: string, deadlineMs = 20_000): Promise<void> {
  const until = Date.now() + deadlineMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** An opaque TCP tunnel through the frontend's mapping to orders' echo app, after one echo. */
function openTunnel(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(mesh.frontendTcpPort, '127.0.0.1');
    socket.once('data', () => resolve(socket));
    socket.once('error', reject);
    // Refused: the frontend closes the app's connection without an echo.
    socket.once('close', () => reject(new Error('the tunnel was closed before the echo')));
    socket.write('ledger line\n');
  });
}

const callersAtOrders = async (): Promise<ConnectionSnapshot[]> => (await connections(mesh.ports.ordersAdmin)).filter((c) => c.direction === 'inbound' && c.role === 'accepted' && c.peerIdentity === FRONTEND_ID);
const legsToOrders = async (): Promise<ConnectionSnapshot[]> => (await connections(mesh.ports.frontendAdmin)).filter((c) => c.role === 'originated' && c.peerIdentity === ORDERS_ID);

describe('a revoked caller (the server sidecar revokes it)', () => {
  it('loses its open keep-alive connection and TCP tunnel, closed by the server, and every new handshake is refused with reason revoked', async () => {
    expect((await get('/orders/1')).status).toBe(200);
    const tunnel = await openTunnel();
    const tunnelClosed = new Promise<void>((resolve) => tunnel.once('close', () => resolve()));
    tunnel.on('error', () => {});
    expect((await callersAtOrders()).length).toBeGreaterThanOrEqual(2);
    expect((await legsToOrders()).length).toBeGreaterThanOrEqual(2);
    expect(await metric(mesh.ports.ordersAdmin, 'meshlet_revoked_connections_closed_total{direction="inbound"}')).toBe(0);
    const seenBefore = mesh.seen.length;

    await kubeletWrite(ordersList, { [KEY]: list(FRONTEND_ID) });
    await eventually(async () => (await metric(mesh.ports.ordersAdmin, 'meshlet_revoked_connections_closed_total{direction="inbound"}')) >= 2, 'orders to close the caller\'s connections');
    await tunnelClosed;
    expect(await callersAtOrders()).toEqual([]);
    // Closed from the server's side: the caller's sidecar sees its connections to orders end.
    await eventually(async () => (await legsToOrders()).length === 0, 'the frontend to see its connections to orders closed');
    expect(orders.stderr()).toMatch(new RegExp(`"event":"peer_revoked","spiffeId":"${FRONTEND_ID}","inboundClosed":[2-9]`));
    expect(await metric(mesh.ports.ordersAdmin, 'meshlet_revocation_revoked_identities')).toBe(1);

    const refusedBefore = await metric(mesh.ports.ordersAdmin, 'meshlet_tls_handshake_failures_total{direction="inbound",reason="revoked"}');
    const refused = await get('/orders/2');
    expect(refused.status).toBe(502);
    // The caller's handshake completes on its side (TLS 1.3), then orders closes the connection
    // unanswered: what the app behind a revoked caller sees (docs/revocation.md "What a caller sees").
    expect(JSON.parse(refused.body)).toMatchObject({ error: { code: 'MESHLET_UPSTREAM_RESET' } });
    expect(await metric(mesh.ports.ordersAdmin, 'meshlet_tls_handshake_failures_total{direction="inbound",reason="revoked"}')).toBeGreaterThan(refusedBefore);
    await expect(openTunnel()).rejects.toThrow();
    expect(mesh.seen.length).toBe(seenBefore);
  });

  it('stays refused when the next list is malformed (the last good list stays in force), counted and logged', async () => {
    await kubeletWrite(ordersList, { [KEY]: '{"apiVersion":"meshlet.io/v1alpha1","kind":"RevocationList","revoked":[{"spiffeId":"spiffe://cluster.local/ns/web/sa/"}]}' });
    await eventually(async () => (await metric(mesh.ports.ordersAdmin, 'meshlet_revocation_rejected_total{code="REVOCATION_LIST_INVALID"}')) === 1, 'the malformed list to be rejected');
    expect(orders.stderr()).toContain('"event":"revocation_list_rejected"');
    expect(orders.stderr()).toContain('revoked[0].spiffeId: invalid SPIFFE ID');
    expect((await get('/orders/3')).status).toBe(502);
    expect(await metric(mesh.ports.ordersAdmin, 'meshlet_revocation_revoked_identities')).toBe(1);
  });

  it('is re-admitted when its entry is removed, without a restart', async () => {
    await kubeletWrite(ordersList, { [KEY]: list() });
    await eventually(async () => (await get('/orders/4')).status === 200, 'the caller to be admitted again');
    expect(orders.stderr()).toContain(`"event":"peer_unrevoked","spiffeId":"${FRONTEND_ID}"`);
    const tunnel = await openTunnel();
    tunnel.destroy();
  });
});

describe('a revoked server (the caller sidecar revokes it)', () => {
  it('has its pooled connection closed by the caller, and the next handshake refused with reason revoked; removal re-admits it', async () => {
    expect((await get('/orders/5')).status).toBe(200);
    expect((await legsToOrders()).length).toBeGreaterThanOrEqual(1);
    const closedBefore = await metric(mesh.ports.frontendAdmin, 'meshlet_revoked_connections_closed_total{direction="outbound"}');

    await kubeletWrite(frontendList, { [KEY]: list(ORDERS_ID) });
    await eventually(async () => (await metric(mesh.ports.frontendAdmin, 'meshlet_revoked_connections_closed_total{direction="outbound"}')) > closedBefore, 'the frontend to close its connections to orders');
    await eventually(async () => (await callersAtOrders()).length === 0, 'orders to see the caller\'s connections end');

    const refused = await get('/orders/6');
    expect(refused.status).toBe(502);
    expect(JSON.parse(refused.body)).toMatchObject({ error: { code: 'MESHLET_UPSTREAM_IDENTITY_REJECTED' } });
    expect(await metric(mesh.ports.frontendAdmin, 'meshlet_tls_handshake_failures_total{direction="outbound",reason="revoked"}')).toBeGreaterThanOrEqual(1);

    await kubeletWrite(frontendList, { [KEY]: list() });
    await eventually(async () => (await get('/orders/7')).status === 200, 'orders to be reachable again');
  });
});
