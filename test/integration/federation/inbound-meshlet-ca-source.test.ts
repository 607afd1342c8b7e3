// Federation with the `meshlet-ca` identity source: mesh A's `orders` sidecar gets its SVID
// from a real `meshlet identity` (in process: Certify over TLS, the ServiceAccount token
// checked against a real JWKS endpoint), and its federated bundles from the federation
// directory. Mesh B's callers (partner.example, B's own CA) are refused, admitted once B's
// bundle is written, refused again once it is removed; a caller of a domain nobody federated
// is always refused; a key naming A's own trust domain never replaces the bundle that came
// from the identity service. No restart anywhere.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCa } from '../../../src/control-plane/identity-service/ca.ts';
import { readIdentityConfig } from '../../../src/control-plane/identity-service/config.ts';
import { startIdentityProcess, type RunningIdentityService } from '../../../src/control-plane/identity-service/process.ts';
import { freePorts } from '../../support/free-port.ts';
import { startFakeIssuer, type FakeIssuer } from '../identity-service/support.ts';
import { bundleJson, callInbound, FederationLab, forgedSvidFiles, mesh, ORDERS_POLICY, svidFiles, until, writeFederation, type Mesh, type RunningSidecar, type SvidFiles } from './fixture.ts';

describe('federation, meshlet-ca source: callers of a foreign trust domain', () => {
  const lab = new FederationLab();
  let dir: string;
  let issuer: FakeIssuer;
  let identity: RunningIdentityService;
  let a: Mesh;
  let b: Mesh;
  let unknown: Mesh;
  let orders: RunningSidecar;
  let payments: SvidFiles;
  let stranger: SvidFiles;

  const refusedHandshakes = () => orders.metric('meshlet_tls_handshake_failures_total', { direction: 'inbound', reason: 'unknown_ca' });
  const domains = () => orders.metric('meshlet_federation_trust_domains');
  const call = (caller: SvidFiles, path: string) => callInbound(orders.inboundPort, caller, a.root.bundlePem, path);
  async function expectRefused(caller: SvidFiles, path = '/partner/orders'): Promise<void> {
    const before = await refusedHandshakes();
    await expect(call(caller, path)).rejects.toThrow();
    await until(async () => (await refusedHandshakes()) === before + 1, 'the refused handshake to be counted');
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'meshlet-federation-ca-'));
    [a, b, unknown] = await Promise.all([mesh('cluster.local'), mesh('partner.example'), mesh('unknown.example')]);
    [payments, stranger] = await Promise.all([svidFiles(b, '/ns/billing/sa/payments'), svidFiles(unknown, '/ns/billing/sa/payments')]);
    issuer = await startFakeIssuer();
    await writeCa(join(dir, 'ca'), a.issuer);
    await writeFile(join(dir, 'api-token'), 'identity-service-token\n');
    await writeFile(join(dir, 'jwks-ca.crt'), issuer.caPem);
    await writeFile(join(dir, 'bundle.crt'), a.root.bundlePem);
    await writeFile(join(dir, 'orders-token'), await issuer.mint({ namespace: 'shop', serviceAccount: 'orders' }));
    const [listen] = await freePorts(1);
    identity = await startIdentityProcess(
      readIdentityConfig({
        MESHLET_TRUST_DOMAIN: 'cluster.local',
        MESHLET_CA_DIR: join(dir, 'ca'),
        MESHLET_IDENTITY_LISTEN: `127.0.0.1:${listen}`,
        MESHLET_IDENTITY_ADMIN_LISTEN: 'off',
        MESHLET_TOKEN_AUTH: 'jwks',
        MESHLET_JWKS_URL: issuer.jwksUrl,
        MESHLET_JWKS_ISSUER: issuer.issuer,
        MESHLET_JWKS_CA_FILE: join(dir, 'jwks-ca.crt'),
        MESHLET_KUBERNETES_TOKEN_FILE: join(dir, 'api-token'),
      }),
      pino({ level: 'silent' }),
    );
    orders = await lab.start({
      mesh: a,
      namespace: 'shop',
      serviceAccount: 'orders',
      policy: ORDERS_POLICY,
      identityEnv: {
        MESHLET_IDENTITY_SOURCE: 'meshlet-ca',
        MESHLET_CA_ADDRESS: `127.0.0.1:${identity.port}`,
        MESHLET_TRUST_BUNDLE_FILE: join(dir, 'bundle.crt'),
        MESHLET_TOKEN_FILE: join(dir, 'orders-token'),
      },
    });
  });
  afterAll(async () => {
    await lab.close();
    await identity?.close(1_000);
    await issuer?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('serves with the SVID the identity service issued', () => {
    expect(orders.lines.find((l) => l.event === 'svid_loaded')).toMatchObject({ source: 'meshlet-ca', spiffeId: 'spiffe://cluster.local/ns/shop/sa/orders' });
  });

  it('refuses B\'s caller before A has B\'s bundle, admits it after, refuses it again after removal', async () => {
    await expectRefused(payments);

    await writeFederation(orders, { 'partner.example.json': bundleJson(b, 1) });
    await until(async () => (await domains()) === 1, 'partner.example to be loaded');
    expect(await call(payments, '/partner/orders')).toMatchObject({ status: 200 });
    expect(orders.seen.at(-1)).toEqual({ path: '/partner/orders', caller: 'spiffe://partner.example/ns/billing/sa/payments' });
    expect((await call(payments, '/local/stock')).status).toBe(403);

    await writeFederation(orders, {});
    await until(async () => (await domains()) === 0, 'partner.example to be dropped');
    await expectRefused(payments);
  });

  it('always refuses a caller of a trust domain nobody federated', async () => {
    await writeFederation(orders, { 'partner.example.json': bundleJson(b, 1) });
    await until(async () => (await domains()) === 1, 'partner.example to be loaded');
    await expectRefused(stranger);
  });

  it('never lets a federation key replace the own trust domain\'s bundle from the identity service', async () => {
    const before = await orders.metric('meshlet_federation_bundle_errors_total', { reason: 'own_trust_domain' });
    await writeFederation(orders, { 'partner.example.json': bundleJson(b, 1), 'cluster.local': bundleJson(unknown, 1) });
    await until(async () => (await orders.metric('meshlet_federation_bundle_errors_total', { reason: 'own_trust_domain' })) === before + 1, 'the own-domain key to be refused');
    await expectRefused(await forgedSvidFiles(unknown, 'spiffe://cluster.local/ns/web/sa/frontend'), '/local/stock');
    // A real cluster.local caller (same CA as the identity service's) still gets in.
    expect(await call(await svidFiles(a, '/ns/web/sa/frontend'), '/local/stock')).toMatchObject({ status: 200 });
  });
});
