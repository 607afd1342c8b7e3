import { request, type ClientRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/common/log/logger.ts';
import type { ConnectionSnapshot } from '../../../src/data-plane/proxy/connection-registry.ts';
import type { Sidecar } from '../../../src/data-plane/sidecar/sidecar.ts';
import { kubeletWrite } from '../../support/kubelet-volume.ts';
import { FRONTEND_ID, meshOfTwo, ORDERS_ID, ordersPolicy, startSidecars, type MeshOfTwo } from '../sidecar/mesh-of-two.ts';
import { eventually } from './mesh-fixture.ts';

/** Polls an async condition; no fixed sleeps (a loaded machine only makes it slower). */
async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Two assembled sidecars (frontend -> orders) configured through their environment, the real
 * policy engine deciding: /connections tells which connections resumed a TLS session, and
 * MESHLET_TLS_SESSION_RESUMPTION=off turns resumption off.
 */
// mesh-of-two's orders policy, with POST allowed too (the held request below is a POST).
const POLICY = (appPort: number, tcpPort: number): string => {
  const policy = ordersPolicy(appPort, tcpPort).replace('methods: [GET]', 'methods: [GET, POST]');
  if (!policy.includes('methods: [GET, POST]')) throw new Error("mesh-of-two's orders policy changed: update this test");
  return policy;
};

const quiet = createLogger({ name: 'sidecar', level: 'error' });

async function connections(adminPort: number): Promise<ConnectionSnapshot[]> {
  return ((await (await fetch(`http://127.0.0.1:${adminPort}/connections`)).json()) as { connections: ConnectionSnapshot[] }).connections;
}

/** Opens an opaque TCP connection through the frontend's mapping and waits for one echo; the caller closes it. */
function openLedger(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('data', () => resolve(socket));
    socket.once('error', reject);
    socket.write('ledger line\n');
  });
}

/** One opaque TCP connection, echoed and closed, and gone from the frontend's /connections. */
async function ledgerRoundTrip(mesh: MeshOfTwo): Promise<void> {
  const socket = await openLedger(mesh.frontendTcpPort);
  await new Promise<void>((resolve) => socket.end(() => resolve()));
  await until(async () => !(await connections(mesh.ports.frontendAdmin)).some((c) => c.role === 'originated'), 'the first connection to close');
  await until(async () => !(await connections(mesh.ports.ordersAdmin)).some((c) => c.direction === 'inbound' && c.role === 'accepted'), 'the first connection to close at orders');
}

function viaFrontend(mesh: MeshOfTwo, method: string, path: string, body?: 'held'): { req: ClientRequest; response: Promise<{ status: number; body: string }> } {
  let req!: ClientRequest;
  const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
    req = request(
      { host: '127.0.0.1', port: mesh.ports.frontendOutbound, method, path: `http://orders.shop:80${path}`, headers: { host: 'orders.shop:80', ...(body ? { 'transfer-encoding': 'chunked' } : {}) }, agent: false },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
  });
  if (body) req.write('first part of a body that is not finished yet');
  else req.end();
  return { req, response };
}

describe('session resumption between two assembled sidecars', () => {
  let mesh: MeshOfTwo | undefined;
  let sidecars: { orders: Sidecar; frontend: Sidecar } | undefined;
  afterEach(async () => {
    await Promise.all([sidecars?.orders.stop(), sidecars?.frontend.stop()]);
    await mesh?.close();
    mesh = undefined;
    sidecars = undefined;
  });

  async function start(env: Record<string, string> = {}): Promise<MeshOfTwo> {
    mesh = await meshOfTwo();
    await kubeletWrite(mesh.ordersPolicyDir, { 'policy.yaml': POLICY(mesh.appPort, mesh.tcpAppPort) });
    Object.assign(mesh.frontendEnv, env);
    Object.assign(mesh.ordersEnv, env);
    sidecars = await startSidecars(mesh, quiet);
    return mesh;
  }

  it('/connections marks resumed connections on both sides; the policy decides the same on them', async () => {
    const m = await start();
    // Opaque TCP: the first connection makes the session, the second resumes it.
    await ledgerRoundTrip(m);
    const held = await openLedger(m.frontendTcpPort);
    const outLegs = (await connections(m.ports.frontendAdmin)).filter((c) => c.role === 'originated' && c.peerIdentity === ORDERS_ID);
    expect(outLegs.map((c) => [c.tlsVersion, c.resumed])).toEqual([['TLSv1.3', true]]);
    const inLegs = (await connections(m.ports.ordersAdmin)).filter((c) => c.direction === 'inbound' && c.role === 'accepted' && c.peerIdentity === FRONTEND_ID);
    expect(inLegs.map((c) => c.resumed)).toEqual([true]);
    held.destroy();

    // HTTP: a request held open keeps the first pooled connection busy, so the next ones need
    // another connection, which resumes the session of the first.
    const slow = viaFrontend(m, 'POST', '/orders/slow', 'held');
    const toOrders = async () => (await connections(m.ports.frontendAdmin)).filter((c) => c.role === 'originated' && c.remotePort === m.ports.ordersInbound);
    await eventually(() => m.seen.some((s) => s.startsWith('POST /orders/slow')), 'the held request to reach the app');
    const first = await toOrders();
    expect(first.map((c) => c.resumed)).toEqual([false]);

    const allowed = await viaFrontend(m, 'GET', '/orders/42').response;
    expect(allowed.status).toBe(200);
    expect(JSON.parse(allowed.body)).toEqual({ path: '/orders/42', caller: FRONTEND_ID });
    const denied = await viaFrontend(m, 'GET', '/admin/users').response;
    expect(denied.status).toBe(403);
    expect(JSON.parse(denied.body)).toMatchObject({ error: { code: 'MESHLET_DENIED', route: 'admin' } });

    const legs = await toOrders();
    expect(legs.filter((c) => !c.resumed).map((c) => c.id)).toEqual(first.map((c) => c.id));
    expect(legs.filter((c) => c.resumed).length).toBeGreaterThanOrEqual(1);
    const accepted = (await connections(m.ports.ordersAdmin)).filter((c) => c.direction === 'inbound' && c.role === 'accepted' && c.peerIdentity === FRONTEND_ID);
    expect(accepted.filter((c) => c.resumed).length).toBeGreaterThanOrEqual(1);
    expect(accepted.filter((c) => !c.resumed).length).toBe(1);

    slow.req.end();
    expect((await slow.response).status).toBe(200);
  });

  it('MESHLET_TLS_SESSION_RESUMPTION=off: every connection is a full handshake', async () => {
    const m = await start({ MESHLET_TLS_SESSION_RESUMPTION: 'off' });
    await ledgerRoundTrip(m);
    const held = await openLedger(m.frontendTcpPort);
    const outLegs = (await connections(m.ports.frontendAdmin)).filter((c) => c.role === 'originated' && c.peerIdentity === ORDERS_ID);
    expect(outLegs.map((c) => c.resumed)).toEqual([false]);
    const inLegs = (await connections(m.ports.ordersAdmin)).filter((c) => c.direction === 'inbound' && c.role === 'accepted' && c.peerIdentity === FRONTEND_ID);
    expect(inLegs.map((c) => c.resumed)).toEqual([false]);
    held.destroy();
  });
});
