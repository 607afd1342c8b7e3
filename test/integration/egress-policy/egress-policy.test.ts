import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { callThrough, egressMesh, FRONTEND_ID, frontendPolicy, grpcThrough, metric, ORDERS_ID, OTHER_ID, tcpEcho, unaryGet, until, type EgressMesh, type LogLine } from './fixture.ts';

/**
 * Issue 16 item 1 — egress allowlists enforced by the caller's outbound sidecar, on two real
 * in-process sidecars over real mTLS on loopback: an HTTP call refused 403 with the reason, a
 * real grpc-js call refused PERMISSION_DENIED, an opaque TCP connection refused (closed,
 * counted), allowed ones passing, a reload reaching the outbound, a bad reload keeping the last
 * good client policy, audit mode passing and counted; every decision in the client metrics and
 * in the decision log with direction outbound.
 */
let mesh: EgressMesh;

beforeAll(async () => {
  mesh = await egressMesh();
});
afterAll(async () => {
  await mesh?.close();
});

const outboundLines = (): LogLine[] => mesh.lines.filter((l) => l.event === 'authz_decision' && l.direction === 'outbound');
const sha = (text: string) => createHash('sha256').update(text).digest('hex');

async function applied(text: string): Promise<void> {
  await mesh.writeFrontendPolicy(text);
  await until(() => mesh.frontend.readiness().checks.policy!.detail === sha(text));
}

describe('the client policy in force (enforce)', () => {
  it('an allowed HTTP call passes over mTLS to the destination', async () => {
    const r = await callThrough(mesh.outbound, 'orders.shop', '/orders/1?token=x');
    expect(r.status).toBe(200);
    expect(r.body).toBe('orders saw /orders/1?token=x');
    const line = outboundLines().find((l) => l.decision === 'allow' && l.path === '/orders/1');
    expect(line).toMatchObject({ caller: FRONTEND_ID, server: ORDERS_ID, destination: 'orders.shop:80', route: 'orders-http', code: 'destination-allowed', protocol: 'http1', port: 80, method: 'GET' });
    expect(line!.reason).toBe(`destination orders.shop:80 (${ORDERS_ID}) is allowed by client "frontend", destination "orders-http"`);
  });

  it('an HTTP call to a destination not listed: 403 MESHLET_DENIED with the reason, never sent', async () => {
    const before = mesh.httpSeen.length;
    const r = await callThrough(mesh.outbound, 'other.shop', '/secrets');
    expect(r.status).toBe(403);
    expect(r.headers['x-meshlet-error']).toBe('MESHLET_DENIED');
    expect(r.headers['content-type']).toBe('application/json');
    expect(JSON.parse(r.body)).toEqual({
      error: {
        code: 'MESHLET_DENIED',
        message: 'request denied by the client policy',
        route: null,
        client: 'frontend',
        reason: 'destination other.shop:80 is not among client "frontend"\'s destinations; default is deny',
      },
    });
    // The body docs/policy.md ("Clients", "Refusals") shows is this very answer.
    const row = readFileSync(new URL('../../../docs/policy.md', import.meta.url), 'utf8').split('\n').find((l) => l.startsWith('| HTTP/1.1, HTTP/2, Upgrade |'))!;
    expect(JSON.parse(r.body)).toEqual(JSON.parse(/body `([^`]+)`/.exec(row)![1]!));
    expect(mesh.httpSeen.length).toBe(before);
    await until(() => outboundLines().some((l) => l.path === '/secrets'));
    expect(outboundLines().find((l) => l.path === '/secrets')).toMatchObject({ level: 'warn', decision: 'deny', caller: FRONTEND_ID, server: null, destination: 'other.shop:80', route: null, code: 'no-destination-matched', port: 80 });
  });

  it('a gRPC call (real grpc-js) to an allowed destination passes; to another, PERMISSION_DENIED with the reason', async () => {
    const allowed = grpcThrough(mesh.outbound, 'orders-grpc.shop:9090');
    const denied = grpcThrough(mesh.outbound, 'other.shop:9090');
    try {
      const ok = await unaryGet(allowed);
      expect(ok.err).toBeNull();
      expect(ok.res).toMatchObject({ id: 7, status: 'shipped' });
      const seen = mesh.grpcSeen.length;
      const refused = await unaryGet(denied);
      expect(refused.err?.code).toBe(grpc.status.PERMISSION_DENIED);
      expect(refused.err?.details).toBe(`request denied by the client policy: destination other.shop:9090 (${OTHER_ID}) is not among client "frontend"'s destinations; default is deny`);
      expect(mesh.grpcSeen.length).toBe(seen);
    } finally {
      allowed.close();
      denied.close();
    }
    await until(() => outboundLines().some((l) => l.protocol === 'grpc' && l.decision === 'deny'));
  });

  it('an opaque TCP connection (MESHLET_OUTBOUND_TCP) the policy does not allow on that port: closed before the peer is dialled, counted', async () => {
    const accepted = mesh.tcpAccepted();
    const refusedBefore = await metric(mesh.frontendAdmin, 'meshlet_proxy_refusals_total', { direction: 'outbound', code: 'MESHLET_DENIED' });
    expect(await tcpEcho(mesh.tcp, 'ledger entry')).toBe('');
    expect(mesh.tcpAccepted()).toBe(accepted);
    expect(await metric(mesh.frontendAdmin, 'meshlet_proxy_refusals_total', { direction: 'outbound', code: 'MESHLET_DENIED' })).toBe(refusedBefore + 1);
    await until(() => outboundLines().some((l) => l.protocol === 'tcp'));
    expect(outboundLines().find((l) => l.protocol === 'tcp')).toMatchObject({
      decision: 'deny',
      code: 'port-not-allowed',
      server: ORDERS_ID,
      destination: `127.0.0.1:${mesh.ordersTcpListener}`,
      port: mesh.ordersTcpListener,
      reason: `destination 127.0.0.1:${mesh.ordersTcpListener} (${ORDERS_ID}) matches client "frontend"'s destination "orders-http" only on ports 80, 9090; default is deny`,
    });
  });

  it('every decision counted in meshlet_policy_client_decisions_total', async () => {
    expect(await metric(mesh.frontendAdmin, 'meshlet_policy_client_decisions_total', { client: 'frontend', destination: 'orders-http', result: 'allow' })).toBeGreaterThanOrEqual(2);
    expect(await metric(mesh.frontendAdmin, 'meshlet_policy_client_decisions_total', { client: 'frontend', destination: 'unmatched', result: 'deny' })).toBeGreaterThanOrEqual(3);
  });
});

describe('reloads reach the outbound', () => {
  it('a reload that lists the TCP port lets the connection through (the cached verdicts are made again)', async () => {
    await applied(frontendPolicy({ ordersTcpPort: mesh.ordersTcpListener }));
    await until(() => mesh.lines.filter((l) => l.event === 'policy_reloaded' && l.client === 'frontend').length >= 2);
    expect(await tcpEcho(mesh.tcp, 'ledger entry')).toBe('ledger entry');
    expect((await callThrough(mesh.outbound, 'orders.shop', '/orders/2')).status).toBe(200);
  });

  it('a bad reload keeps the last good client policy (and says so in the metrics)', async () => {
    const invalid = await metric(mesh.frontendAdmin, 'meshlet_policy_reloads_total', { result: 'invalid' });
    await mesh.writeFrontendPolicy(frontendPolicy({ ordersTcpPort: mesh.ordersTcpListener }).replace('ports: [80, 9090]', 'ports: [80, 9090]\n        - { name: broken, cidr: 10.0.0.0/40 }'));
    await until(async () => (await metric(mesh.frontendAdmin, 'meshlet_policy_reloads_total', { result: 'invalid' })) === invalid + 1);
    expect(await metric(mesh.frontendAdmin, 'meshlet_policy_rejected_total', { code: 'POLICY_BAD_CIDR' })).toBe(1);
    expect(await tcpEcho(mesh.tcp, 'still allowed')).toBe('still allowed');
    expect((await callThrough(mesh.outbound, 'orders.shop', '/orders/3')).status).toBe(200);
    expect((await callThrough(mesh.outbound, 'other.shop', '/orders/3')).status).toBe(403);
  });

  it('mode: audit — the call passes, recorded as would-deny (metric and decision log)', async () => {
    await applied(frontendPolicy({ mode: 'audit' }));
    const r = await callThrough(mesh.outbound, 'other.shop', '/audited');
    // other.shop:80 pins only the trust domain; orders' sidecar proves it, and lets frontend in.
    expect(r.status).toBe(200);
    expect(r.body).toBe('orders saw /audited');
    expect(await metric(mesh.frontendAdmin, 'meshlet_policy_client_decisions_total', { client: 'frontend', destination: 'unmatched', result: 'audit_would_deny' })).toBe(1);
    await until(() => outboundLines().some((l) => l.path === '/audited'));
    expect(outboundLines().find((l) => l.path === '/audited')).toMatchObject({
      decision: 'audit_would_deny',
      reason: 'audit: would deny: destination other.shop:80 is not among client "frontend"\'s destinations; default is deny',
    });
  });
});
