// Federation, outbound: mesh A's `frontend` sidecar (cluster.local) calls mesh B's `orders`
// sidecar (partner.example), each federating with the other through its federation directory.
// A verifies B's server certificate against B's bundle only: not before it has B's bundle, and
// never against the union of its bundles (a partner.example server certificate signed by A's
// own CA is refused though OpenSSL alone would accept it).
import * as tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleJson, callOutbound, FederationLab, forgedSvidFiles, mesh, until, writeFederation, type Mesh, type RunningSidecar } from './fixture.ts';

const B_ORDERS = 'spiffe://partner.example/ns/shop/sa/orders';

const B_POLICY = `apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: orders }
spec:
  servers:
    - name: orders
      selector: { serviceAccount: orders }
      default: deny
      ports:
        - { port: APP_PORT, protocol: http }
      routes:
        - name: from-cluster-local
          path: { prefix: /orders }
          callers:
            - trustDomain: cluster.local
`;

describe('federation, outbound: A calls a server of federated trust domain B', () => {
  const lab = new FederationLab();
  let a: Mesh;
  let b: Mesh;
  let bOrders: RunningSidecar;
  let frontend: RunningSidecar;
  /** A TLS server presenting B's orders identity signed by A's CA, and whether any request reached it. */
  let forged: { port: number; requests: number };

  const outboundFailures = () => frontend.metric('meshlet_tls_handshake_failures_total', { direction: 'outbound', reason: 'unknown_ca' });

  beforeAll(async () => {
    [a, b] = await Promise.all([mesh('cluster.local'), mesh('partner.example')]);
    bOrders = await lab.start({ mesh: b, namespace: 'shop', serviceAccount: 'orders', policy: B_POLICY, federation: { 'cluster.local': bundleJson(a, 1) } });

    const forgedSvid = await forgedSvidFiles(a, B_ORDERS);
    const state = { port: 0, requests: 0 };
    const server = tls.createServer({ cert: forgedSvid['tls.crt'], key: forgedSvid['tls.key'], minVersion: 'TLSv1.3', requestCert: true, rejectUnauthorized: false }, (socket) => {
      socket.on('data', () => state.requests++);
      socket.on('error', () => undefined);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    state.port = (server.address() as AddressInfo).port;
    forged = state;
    lab.defer(() => new Promise((r) => server.close(() => r())));

    frontend = await lab.start({
      mesh: a,
      namespace: 'web',
      serviceAccount: 'frontend',
      env: {
        // orders-again.partner is the same server under another name: a destination with no
        // pooled connection yet, so its first request is sure to dial (and handshake) afresh.
        MESHLET_DESTINATION_ADDRESSES: `orders.partner:80=127.0.0.1:${bOrders.inboundPort},orders-again.partner:80=127.0.0.1:${bOrders.inboundPort},forged.partner:80=127.0.0.1:${forged.port}`,
        MESHLET_DESTINATION_IDENTITIES: `orders.partner:80=${B_ORDERS},orders-again.partner:80=${B_ORDERS},forged.partner:80=${B_ORDERS}`,
      },
    });
  });
  afterAll(() => lab.close());

  it('refuses B\'s server while A holds no bundle for partner.example: 502, unknown_ca', async () => {
    const before = await outboundFailures();
    const answer = await callOutbound(frontend.outboundPort, 'orders.partner:80', '/orders');
    expect(answer).toMatchObject({ status: 502, error: 'MESHLET_UPSTREAM_TLS_FAILED' });
    expect(await outboundFailures()).toBe(before + 1);
    expect(bOrders.seen).toEqual([]);
  });

  it('reaches B\'s server once B\'s bundle is in A\'s federation directory; B sees A\'s caller', async () => {
    await writeFederation(frontend, { 'partner.example.json': bundleJson(b, 1) });
    await until(async () => (await frontend.metric('meshlet_federation_trust_domains')) === 1, 'partner.example to be loaded by the frontend');
    const answer = await callOutbound(frontend.outboundPort, 'orders.partner:80', '/orders');
    expect(answer.status).toBe(200);
    expect(bOrders.seen.at(-1)).toEqual({ path: '/orders', caller: 'spiffe://cluster.local/ns/web/sa/frontend' });
  });

  it('refuses a partner.example server certificate signed by A\'s own CA: verified against B\'s bundle only', async () => {
    const before = await outboundFailures();
    const answer = await callOutbound(frontend.outboundPort, 'forged.partner:80', '/orders');
    // OpenSSL accepts it (A's root is in the store); meshlet's SPIFFE check against partner.example's bundle does not.
    expect(answer).toMatchObject({ status: 502, error: 'MESHLET_UPSTREAM_IDENTITY_REJECTED' });
    expect(await outboundFailures()).toBe(before + 1);
    expect(forged.requests).toBe(0);
  });

  it('refuses B\'s server again on a new connection once B\'s key is removed', async () => {
    await writeFederation(frontend, {});
    await until(async () => (await frontend.metric('meshlet_federation_trust_domains')) === 0, 'partner.example to be dropped');
    const before = await outboundFailures();
    // A new connection (a destination never dialled before). Connections opened before the
    // removal are not closed by it: docs/identity-sources.md#federation, "Limits".
    const answer = await callOutbound(frontend.outboundPort, 'orders-again.partner:80', '/orders');
    expect(answer).toMatchObject({ status: 502, error: 'MESHLET_UPSTREAM_TLS_FAILED' });
    expect(await outboundFailures()).toBe(before + 1);
  });
});
