import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/common/log/logger.ts';
import type { ConnectionSnapshot } from '../../../src/data-plane/proxy/connection-registry.ts';
import type { Sidecar } from '../../../src/data-plane/sidecar/sidecar.ts';
import { FRONTEND_ID, meshOfTwo, ORDERS_ID, startSidecars, type MeshOfTwo } from '../sidecar/mesh-of-two.ts';
import { eventually } from './mesh-fixture.ts';

/**
 * Two assembled sidecars (frontend -> orders) configured through their environment:
 * MESHLET_TLS_KEY_EXCHANGE decides the key exchange group of every mTLS hop between them, and
 * /connections shows it on both sides (docs/tls.md "Key exchange"); a pq-only sidecar refuses a
 * classical one, counted under reason no_shared_group; a bad value stops the process at start.
 */
const BIN = fileURLToPath(new URL('../../../bin/meshlet.js', import.meta.url));
const quiet = createLogger({ name: 'sidecar', level: 'error' });

async function connections(adminPort: number): Promise<ConnectionSnapshot[]> {
  return ((await (await fetch(`http://127.0.0.1:${adminPort}/connections`)).json()) as { connections: ConnectionSnapshot[] }).connections;
}

async function handshakeFailures(adminPort: number, direction: 'inbound' | 'outbound', reason: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  const m = new RegExp(`^meshlet_tls_handshake_failures_total\\{direction="${direction}",reason="${reason}"\\} (\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : Number.NaN;
}

function get(mesh: MeshOfTwo, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: mesh.ports.frontendOutbound, method: 'GET', path: `http://orders.shop:80${path}`, headers: { host: 'orders.shop:80' }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** An opaque TCP connection through the frontend's mapping, after one echo; the caller closes it. */
function openLedger(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('data', () => resolve(socket));
    socket.once('error', reject);
    socket.write('ledger line\n');
  });
}

const meshLegs = async (m: MeshOfTwo): Promise<{ out: ConnectionSnapshot[]; in: ConnectionSnapshot[] }> => ({
  out: (await connections(m.ports.frontendAdmin)).filter((c) => c.role === 'originated' && c.peerIdentity === ORDERS_ID),
  in: (await connections(m.ports.ordersAdmin)).filter((c) => c.direction === 'inbound' && c.role === 'accepted' && c.peerIdentity === FRONTEND_ID),
});

describe('MESHLET_TLS_KEY_EXCHANGE between two assembled sidecars', () => {
  let mesh: MeshOfTwo | undefined;
  let sidecars: { orders: Sidecar; frontend: Sidecar } | undefined;
  afterEach(async () => {
    await Promise.all([sidecars?.orders.stop(), sidecars?.frontend.stop()]);
    await mesh?.close();
    mesh = undefined;
    sidecars = undefined;
  });

  async function start(frontend: Record<string, string>, orders: Record<string, string>): Promise<MeshOfTwo> {
    mesh = await meshOfTwo();
    Object.assign(mesh.frontendEnv, frontend);
    Object.assign(mesh.ordersEnv, orders);
    sidecars = await startSidecars(mesh, quiet);
    return mesh;
  }

  it('default (hybrid): every hop negotiates X25519MLKEM768 and /connections shows it on both sides, resumed connections included; plaintext legs show null', async () => {
    const m = await start({}, {});
    const allowed = await get(m, '/orders/42');
    expect(allowed.status).toBe(200);

    // Opaque TCP: the first connection is a full handshake, the next resumes its session.
    const first = await openLedger(m.frontendTcpPort);
    await new Promise<void>((resolve) => first.end(() => resolve()));
    await eventually(() => first.destroyed, 'the first ledger connection to close');
    const held = await openLedger(m.frontendTcpPort);
    let legs = await meshLegs(m);
    await eventually(() => legs.in.some((c) => c.resumed), 'the resumed connection to show at orders');
    legs = await meshLegs(m);
    expect(legs.out.length).toBeGreaterThanOrEqual(2);
    expect(legs.in.length).toBeGreaterThanOrEqual(2);
    expect(new Set(legs.out.map((c) => c.tlsGroup))).toEqual(new Set(['X25519MLKEM768']));
    expect(new Set(legs.in.map((c) => c.tlsGroup))).toEqual(new Set(['X25519MLKEM768']));
    expect(legs.out.some((c) => c.resumed) && legs.in.some((c) => c.resumed)).toBe(true);
    // The app's side of the sidecars is plaintext.
    const appLegs = (await connections(m.ports.ordersAdmin)).filter((c) => c.role === 'originated');
    expect(appLegs.length).toBeGreaterThanOrEqual(1);
    expect(appLegs.every((c) => c.tlsVersion === null && c.tlsGroup === null)).toBe(true);
    held.destroy();
  });

  it('classical on one side: the hybrid side falls back, both record X25519', async () => {
    const m = await start({ MESHLET_TLS_KEY_EXCHANGE: 'classical' }, {});
    expect(sidecars!.frontend.config.tlsKeyExchange).toBe('classical');
    expect((await get(m, '/orders/42')).status).toBe(200);
    const legs = await meshLegs(m);
    expect(legs.out.map((c) => c.tlsGroup)).toEqual(['X25519']);
    expect(legs.in.map((c) => c.tlsGroup)).toEqual(['X25519']);
  });

  it('pq-only refuses a classical caller: the app gets 502 MESHLET_UPSTREAM_TLS_FAILED, both sidecars count reason no_shared_group', async () => {
    const m = await start({ MESHLET_TLS_KEY_EXCHANGE: 'classical' }, { MESHLET_TLS_KEY_EXCHANGE: 'pq-only' });
    expect(await handshakeFailures(m.ports.ordersAdmin, 'inbound', 'no_shared_group')).toBe(0);
    const refused = await get(m, '/orders/42');
    expect(refused.status).toBe(502);
    expect(JSON.parse(refused.body)).toMatchObject({ error: { code: 'MESHLET_UPSTREAM_TLS_FAILED' } });
    expect(m.seen).toEqual([]);
    expect(await handshakeFailures(m.ports.frontendAdmin, 'outbound', 'no_shared_group')).toBeGreaterThanOrEqual(1);
    const inbound = await handshakeFailures(m.ports.ordersAdmin, 'inbound', 'no_shared_group');
    expect(inbound).toBeGreaterThanOrEqual(1);
  });

  it('a pq-only sidecar serves a hybrid caller over X25519MLKEM768', async () => {
    const m = await start({}, { MESHLET_TLS_KEY_EXCHANGE: 'pq-only' });
    expect((await get(m, '/orders/42')).status).toBe(200);
    const legs = await meshLegs(m);
    expect(legs.out.map((c) => c.tlsGroup)).toEqual(['X25519MLKEM768']);
    expect(legs.in.map((c) => c.tlsGroup)).toEqual(['X25519MLKEM768']);
  });
});

describe('meshlet sidecar with a bad MESHLET_TLS_KEY_EXCHANGE', () => {
  it('refuses to start, naming the variable and the values it takes', async () => {
    const child = spawn(process.execPath, [BIN, 'sidecar'], {
      env: { PATH: process.env.PATH ?? '', MESHLET_NAMESPACE: 'shop', MESHLET_SERVICE_ACCOUNT: 'orders', MESHLET_TLS_KEY_EXCHANGE: 'kyber' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    expect(code).toBe(1);
    expect(stderr).toContain('MESHLET_CONFIG_INVALID');
    expect(stderr).toContain('MESHLET_TLS_KEY_EXCHANGE="kyber": must be one of hybrid, classical, pq-only');
  });
});
