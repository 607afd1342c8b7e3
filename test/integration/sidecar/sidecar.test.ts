import { request } from 'node:http';
import { connect } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/common/log/logger.ts';
import type { Sidecar } from '../../../src/data-plane/sidecar/sidecar.ts';
import { kubeletWrite } from '../../support/kubelet-volume.ts';
import { FRONTEND_ID, meshOfTwo, startSidecars, ORDERS_ID, ordersPolicy, type MeshOfTwo } from './mesh-of-two.ts';

/**
 * Two assembled sidecars (frontend -> orders) on loopback, configured only through their
 * environment, exactly as the injector configures them: files identity source, a policy
 * ConfigMap directory, explicit-mode outbound.
 */
let mesh: MeshOfTwo;
let orders: Sidecar;
let frontend: Sidecar;
const logLines: string[] = [];
const logStream = new Writable({
  write(chunk, _enc, cb) {
    logLines.push(...String(chunk).split('\n').filter(Boolean));
    cb();
  },
});

function viaFrontend(path: string, method = 'GET'): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      // HTTP_PROXY style: absolute-form request line to the outbound listener.
      { host: '127.0.0.1', port: mesh.ports.frontendOutbound, method, path: `http://orders.shop:80${path}`, headers: { host: 'orders.shop:80', 'x-meshlet-peer-identity': 'spiffe://cluster.local/ns/evil/sa/forged' } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  mesh = await meshOfTwo();
  ({ orders, frontend } = await startSidecars(mesh, createLogger({ name: 'sidecar', level: 'info', destination: logStream })));
});

afterAll(async () => {
  await Promise.all([orders?.stop(), frontend?.stop()]);
  await mesh?.close();
});

describe('meshlet sidecar (assembled)', () => {
  it('is ready once SVID, policy and listeners are in place', async () => {
    const res = await fetch(`http://127.0.0.1:${mesh.ports.ordersAdmin}/ready`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { checks: Record<string, { ok: boolean; detail?: string }> };
    expect(body.checks.svid).toEqual({ ok: true, detail: ORDERS_ID });
    expect(body.checks.listeners?.ok).toBe(true);
  });

  it('a sidecar with no policy file says the mesh default applies, not that it kept a last good one', () => {
    // The frontend's policy volume is mounted but empty; the orders policy is valid.
    const absent = logLines.filter((l) => l.includes('"event":"policy_absent"')).map((l) => JSON.parse(l) as { file: string; defaultPolicy: string });
    expect(absent).toEqual([expect.objectContaining({ file: `${mesh.frontendEnv['MESHLET_POLICY_DIR']}/policy.yaml`, defaultPolicy: 'deny' })]);
    expect(logLines.filter((l) => l.includes('"event":"policy_rejected"'))).toEqual([]);
  });

  it('carries an allowed call over mTLS; the app sees the verified caller, not the forged header', async () => {
    const res = await viaFrontend('/orders/42');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ path: '/orders/42', caller: FRONTEND_ID });
  });

  it('denies a route the policy does not grant: 403 JSON with route and reason, the app never sees it', async () => {
    const before = mesh.seen.length;
    const res = await viaFrontend('/admin/users');
    expect(res.status).toBe(403);
    expect(res.headers['x-meshlet-error']).toBe('MESHLET_DENIED');
    const body = JSON.parse(res.body) as { error: { route: string; reason: string } };
    expect(body.error.route).toBe('admin');
    expect(body.error.reason).toContain('not authorized by route "admin"');
    expect(mesh.seen.length).toBe(before);
    expect(logLines.some((l) => l.includes('"event":"authz_decision"') && l.includes('"decision":"deny"') && l.includes('"route":"admin"') && l.includes(FRONTEND_ID))).toBe(true);
  });

  it('applies a policy change (kubelet swap) to the next request', async () => {
    await kubeletWrite(mesh.ordersPolicyDir, { 'policy.yaml': ordersPolicy(mesh.appPort, mesh.tcpAppPort).replace('spiffe://cluster.local/ns/ops/sa/operator', FRONTEND_ID) });
    let status = 0;
    for (let i = 0; i < 100 && status !== 200; i++) {
      status = (await viaFrontend('/admin/users')).status;
      if (status !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    expect(status).toBe(200);
  });

  it('carries opaque TCP from a local mapping over mTLS to the peer\'s tcp port, authorized per connection', async () => {
    const echoed = await new Promise<string>((resolve, reject) => {
      const socket = connect(mesh.frontendTcpPort, '127.0.0.1');
      let got = '';
      socket.on('connect', () => socket.end('ledger line 1\n'));
      socket.on('data', (d) => (got += d));
      socket.on('end', () => resolve(got));
      socket.on('error', reject);
    });
    expect(echoed).toBe('ledger line 1\n');
    const list = (await (await fetch(`http://127.0.0.1:${mesh.ports.ordersAdmin}/metrics`)).text());
    expect(list).toMatch(/meshlet_authz_decisions_total\{route="ledger-stream",caller="spiffe:\/\/cluster\.local\/ns\/web\/sa\/frontend",result="allow"\} 1/);
  });

  it('keeps request metrics bounded however many distinct paths are requested', async () => {
    const seriesOf = async () =>
      (await (await fetch(`http://127.0.0.1:${mesh.ports.ordersAdmin}/metrics`)).text()).split('\n').filter((l) => l.startsWith('meshlet_requests_total{')).length;
    await viaFrontend('/nowhere/0');
    const before = await seriesOf();
    for (let i = 1; i <= 40; i++) await viaFrontend(`/nowhere/${i}/${'x'.repeat(i)}`);
    expect(await seriesOf()).toBe(before);
  });

  it('resets a connection to an undeclared port (the catch-all) and counts it', async () => {
    const outcome = await new Promise<string>((resolve) => {
      const socket = connect(mesh.ports.ordersCatchAll, '127.0.0.1');
      socket.on('connect', () => socket.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n'));
      socket.on('data', () => resolve('data'));
      socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
      socket.on('close', () => resolve('closed'));
    });
    expect(['ECONNRESET', 'closed']).toContain(outcome);
    const metrics = await (await fetch(`http://127.0.0.1:${mesh.ports.ordersAdmin}/metrics`)).text();
    expect(metrics).toMatch(/meshlet_proxy_refusals_total\{direction="inbound",code="MESHLET_UNDECLARED_PORT"\} 1/);
  });

  it('counts every request, per route and caller, on both sides of the hop', async () => {
    const inbound = await (await fetch(`http://127.0.0.1:${mesh.ports.ordersAdmin}/metrics`)).text();
    // Exactly one allowed GET /orders/42 was made by this file (the route's other series exist at 0 from the start).
    const allowed = inbound.split('\n').filter((l) => l.startsWith('meshlet_requests_total{') && l.includes('direction="inbound"') && l.includes('route="list-orders"') && !l.endsWith(' 0'));
    expect(allowed).toHaveLength(1);
    expect(allowed[0]).toContain(`peer="${FRONTEND_ID}"`);
    expect(allowed[0]).toContain('status_class="2xx"');
    expect(allowed[0]).toContain('authz="allow"');
    expect(allowed[0]!.endsWith(' 1')).toBe(true);
    const denied = inbound.split('\n').find((l) => l.startsWith('meshlet_requests_total{') && l.includes('route="admin"') && l.includes('authz="deny"'));
    expect(denied).toContain('status_class="4xx"');
    const outbound = await (await fetch(`http://127.0.0.1:${mesh.ports.frontendAdmin}/metrics`)).text();
    expect(outbound).toMatch(/meshlet_request_duration_seconds_count\{[^}]*direction="outbound"[^}]*\} [1-9]/);
  });

  it('counts decisions and lists live connections on the admin port', async () => {
    const metrics = await (await fetch(`http://127.0.0.1:${mesh.ports.ordersAdmin}/metrics`)).text();
    expect(metrics).toMatch(/meshlet_authz_decisions_total\{[^}]*result="deny"[^}]*\} [1-9]/);
    expect(metrics).toContain('meshlet_policy_reloads_total');
    const list = (await (await fetch(`http://127.0.0.1:${mesh.ports.ordersAdmin}/connections`)).json()) as { connections: { direction: string; peerIdentity: string | null }[] };
    expect(list.connections.some((c) => c.direction === 'inbound' && c.peerIdentity === FRONTEND_ID)).toBe(true);
  });
});
