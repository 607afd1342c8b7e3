import { createHash } from 'node:crypto';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openEcho } from '../proxy-tcp/support.ts';
import { svidFiles } from '../sidecar/mesh-of-two.ts';
import { egressMesh, FRONTEND_ID, frontendPolicy, metric, ORDERS_ID, ordersPolicy, until, type EgressMesh, type LogLine } from '../egress-policy/fixture.ts';

/**
 * A connection decided once, when it opened (opaque TCP, both directions), is decided again
 * when a new policy applies: two real sidecars on loopback over real mTLS (frontend's
 * MESHLET_OUTBOUND_TCP listener -> orders' opaque TCP port -> an echo app); each policy is
 * written as kubelet writes a ConfigMap. A change that still allows leaves the connection
 * working; one that denies closes it (counted, logged, the denial in the decision log); audit
 * mode closes nothing.
 */
let mesh: EgressMesh;

beforeAll(async () => {
  mesh = await egressMesh();
});
afterAll(async () => {
  await mesh?.close();
});

const sha = (text: string) => createHash('sha256').update(text).digest('hex');

async function frontendApplies(text: string): Promise<void> {
  await mesh.writeFrontendPolicy(text);
  await until(() => mesh.frontend.readiness().checks.policy!.detail === sha(text));
}

async function ordersApplies(text: string): Promise<void> {
  await mesh.writeOrdersPolicy(text);
  await until(() => mesh.orders.readiness().checks.policy!.detail === sha(text));
}

const closedLines = (): LogLine[] => mesh.lines.filter((l) => l.event === 'policy_connections_closed');
const withTcp = () => frontendPolicy({ ordersTcpPort: mesh.ordersTcpListener });

describe('outbound: the client policy decides an open opaque connection again', () => {
  it('a change that still allows the destination leaves the connection open and working', async () => {
    await frontendApplies(withTcp());
    const c = await openEcho(mesh.tcp);
    expect(await c.echo('before')).toBe('before');
    // Same destinations, another document: applied, the connection decided again and kept.
    await frontendApplies(`${withTcp()}# reworded\n`);
    expect(await c.echo('after')).toBe('after');
    expect(c.isClosed()).toBe(false);
    expect(await metric(mesh.frontendAdmin, 'meshlet_policy_connections_closed_total', { direction: 'outbound' })).toBe(0);
    c.end();
  });

  it('audit mode that would deny the destination closes nothing', async () => {
    await frontendApplies(withTcp());
    const c = await openEcho(mesh.tcp);
    expect(await c.echo('one')).toBe('one');
    await frontendApplies(frontendPolicy({ mode: 'audit' }));
    expect(await c.echo('two')).toBe('two');
    expect(await metric(mesh.frontendAdmin, 'meshlet_policy_connections_closed_total', { direction: 'outbound' })).toBe(0);
    c.end();
  });

  it('a change that drops the destination closes the open connection: counted, logged, the denial in the decision log', async () => {
    await frontendApplies(withTcp());
    const c = await openEcho(mesh.tcp);
    expect(await c.echo('ledger')).toBe('ledger');
    const deniesBefore = mesh.lines.filter((l) => l.event === 'authz_decision' && l.direction === 'outbound' && l.decision === 'deny').length;
    const denying = frontendPolicy();
    await frontendApplies(denying);
    await c.closed;
    expect(await metric(mesh.frontendAdmin, 'meshlet_policy_connections_closed_total', { direction: 'outbound' })).toBe(1);
    expect(await metric(mesh.frontendAdmin, 'meshlet_policy_connections_closed_total', { direction: 'inbound' })).toBe(0);
    await until(() => closedLines().length === 1);
    expect(closedLines()[0]).toMatchObject({ level: 'warn', hash: sha(denying), inboundClosed: 0, outboundClosed: 1 });
    const denial = mesh.lines.filter((l) => l.event === 'authz_decision' && l.direction === 'outbound' && l.decision === 'deny');
    expect(denial.length).toBe(deniesBefore + 1);
    expect(denial.at(-1)).toMatchObject({ caller: FRONTEND_ID, server: ORDERS_ID, destination: `127.0.0.1:${mesh.ordersTcpListener}`, code: 'port-not-allowed', protocol: 'tcp' });
    // And a new connection is refused as before.
    const again = await openEcho(mesh.tcp);
    await again.closed;
  });
});

describe('inbound: the server policy decides an open opaque connection again', () => {
  it("orders' new policy no longer lets frontend in: frontend's open connection is closed by orders' sidecar", async () => {
    await frontendApplies(withTcp());
    const c = await openEcho(mesh.tcp);
    expect(await c.echo('in')).toBe('in');
    // Still allowed by a reworded policy: kept.
    await ordersApplies(`${ordersPolicy(mesh.ordersApps)}# reworded\n`);
    expect(await c.echo('still')).toBe('still');
    await ordersApplies(ordersPolicy(mesh.ordersApps, 'spiffe://cluster.local/ns/web/sa/someone-else'));
    await c.closed;
    expect(await metric(mesh.ordersAdmin, 'meshlet_policy_connections_closed_total', { direction: 'inbound' })).toBe(1);
    expect(await metric(mesh.ordersAdmin, 'meshlet_policy_connections_closed_total', { direction: 'outbound' })).toBe(0);
    // The frontend side did not close it: its client policy still allows the destination.
    expect(await metric(mesh.frontendAdmin, 'meshlet_policy_connections_closed_total', { direction: 'outbound' })).toBe(1);
    await ordersApplies(ordersPolicy(mesh.ordersApps));
  });

  it("a meshed caller's own TLS inside mTLS to an HTTP port (spliced, decided once) is closed too when orders' policy stops letting it in", async () => {
    const files = await svidFiles(mesh.ca, FRONTEND_ID);
    const hello = await clientHello();
    const socket = tls.connect({ host: '127.0.0.1', port: mesh.ordersEchoListener, cert: files['tls.crt'], key: files['tls.key'], ca: files['ca.crt'], checkServerIdentity: () => undefined });
    socket.on('error', () => undefined);
    await new Promise((r) => socket.once('secureConnect', r));
    const closed = new Promise((r) => socket.once('close', r));
    // No ALPN and a ClientHello inside: the app's own TLS, spliced to the app (an echo here).
    let echoed = 0;
    socket.on('data', (d: Buffer) => (echoed += d.length));
    socket.write(hello);
    await until(() => echoed >= hello.length);
    const before = await metric(mesh.ordersAdmin, 'meshlet_policy_connections_closed_total', { direction: 'inbound' });
    await ordersApplies(ordersPolicy(mesh.ordersApps, 'spiffe://cluster.local/ns/web/sa/someone-else'));
    await closed;
    expect(await metric(mesh.ordersAdmin, 'meshlet_policy_connections_closed_total', { direction: 'inbound' })).toBe(before + 1);
    await ordersApplies(ordersPolicy(mesh.ordersApps));
  });
});

/** The first bytes of a real TLS client: a ClientHello, captured from node:tls on loopback. */
async function clientHello(): Promise<Buffer> {
  const server = net.createServer();
  const got = new Promise<Buffer>((resolve) => server.once('connection', (s) => s.once('data', (d: Buffer) => { resolve(d); s.destroy(); })));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const c = tls.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, servername: 'db.example', rejectUnauthorized: false });
  c.on('error', () => undefined);
  const hello = await got;
  c.destroy();
  server.close();
  return hello;
}
