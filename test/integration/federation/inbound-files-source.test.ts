// Federation with the `files` identity source, inbound: mesh A's `orders` sidecar (trust domain
// cluster.local, SVID from mounted files) and callers from mesh B (partner.example), from
// domains A never federates with, and forgers. Real sidecars, real TLS 1.3 on loopback, real
// certificates from each mesh's own CA; the federation directory is updated the way kubelet
// updates a ConfigMap volume (`..data` swap), and the sidecar is never restarted.
import * as https from 'node:https';
import * as tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleJson, callInbound, FederationLab, forgedSvidFiles, mesh, ORDERS_POLICY, svidFiles, until, writeFederation, type Mesh, type RunningSidecar, type SvidFiles } from './fixture.ts';

describe('federation, files source: callers of a foreign trust domain', () => {
  const lab = new FederationLab();
  let a: Mesh;
  let b: Mesh;
  let unknown: Mesh;
  let third: Mesh;
  let orders: RunningSidecar;
  let payments: SvidFiles;
  let reporting: SvidFiles;
  let stranger: SvidFiles;
  let thirdCaller: SvidFiles;
  let frontend: SvidFiles;

  const refusedHandshakes = () => orders.metric('meshlet_tls_handshake_failures_total', { direction: 'inbound', reason: 'unknown_ca' });
  const errors = (reason: string) => orders.metric('meshlet_federation_bundle_errors_total', { reason });
  const domains = () => orders.metric('meshlet_federation_trust_domains');
  const call = (caller: SvidFiles, path: string) => callInbound(orders.inboundPort, caller, a.root.bundlePem, path);
  /** A call whose handshake orders refuses: it fails, and orders counts one more unknown_ca. */
  async function expectRefused(caller: SvidFiles, path = '/partner/orders'): Promise<void> {
    const before = await refusedHandshakes();
    await expect(call(caller, path)).rejects.toThrow();
    await until(async () => (await refusedHandshakes()) === before + 1, 'the refused handshake to be counted');
  }

  beforeAll(async () => {
    [a, b, unknown, third] = await Promise.all([mesh('cluster.local'), mesh('partner.example'), mesh('unknown.example'), mesh('third.example')]);
    [payments, reporting, stranger, thirdCaller, frontend] = await Promise.all([
      svidFiles(b, '/ns/billing/sa/payments'),
      svidFiles(b, '/ns/analytics/sa/reporting'),
      svidFiles(unknown, '/ns/billing/sa/payments'),
      svidFiles(third, '/ns/ops/sa/auditor'),
      svidFiles(a, '/ns/web/sa/frontend'),
    ]);
    orders = await lab.start({ mesh: a, namespace: 'shop', serviceAccount: 'orders', policy: ORDERS_POLICY });
  });
  afterAll(() => lab.close());

  it('refuses B\'s callers while A holds no bundle for partner.example (unknown_ca)', async () => {
    expect(await domains()).toBe(0);
    await expectRefused(payments);
    expect(orders.seen).toEqual([]);
  });

  it('admits them once B\'s bundle is written into the federation directory, without a restart', async () => {
    await writeFederation(orders, { 'partner.example': bundleJson(b, 1) });
    await until(async () => (await domains()) === 1, 'partner.example to be loaded');
    expect(await call(payments, '/partner/orders')).toMatchObject({ status: 200 });
    expect(orders.seen.at(-1)).toEqual({ path: '/partner/orders', caller: 'spiffe://partner.example/ns/billing/sa/payments' });
    const updated = orders.lines.find((l) => l.event === 'federation_updated');
    expect(updated).toMatchObject({ trustDomains: ['partner.example'], added: ['partner.example'], removed: [] });
  });

  it('policy names federated callers by trustDomain or spiffeId; a route naming only the local domain denies them', async () => {
    expect(await call(reporting, '/partner/report')).toMatchObject({ status: 200 });
    expect(await call(payments, '/pay/charge')).toMatchObject({ status: 200 });
    const notPayments = await call(reporting, '/pay/charge');
    expect(notPayments.status).toBe(403);
    expect(JSON.parse(notPayments.body)).toMatchObject({ error: { code: 'MESHLET_DENIED', route: 'payments' } });
    const local = await call(payments, '/local/stock');
    expect(local.status).toBe(403);
    expect(JSON.parse(local.body)).toMatchObject({ error: { code: 'MESHLET_DENIED', route: 'local-only', reason: 'caller is not authorized by route "local-only"' } });
    // A's own callers are untouched by federation.
    expect(await call(frontend, '/local/stock')).toMatchObject({ status: 200 });
  });

  it('always refuses a caller of a trust domain nobody federated (unknown.example)', async () => {
    await expectRefused(stranger);
  });

  it('refuses a leaf claiming cluster.local signed by B\'s CA, though B is federated (the union trap)', async () => {
    const forged = await forgedSvidFiles(b, 'spiffe://cluster.local/ns/web/sa/frontend');
    await expectRefused(forged, '/local/stock');
  });

  it('keeps the last good bundle when a domain\'s file turns malformed, and still applies other domains\' changes', async () => {
    const before = await errors('invalid_bundle');
    await writeFederation(orders, { 'partner.example': '{"keys": [', 'third.example.json': bundleJson(third, 7) });
    await until(async () => (await domains()) === 2, 'third.example to be loaded next to the kept partner.example');
    expect(await errors('invalid_bundle')).toBe(before + 1);
    const rejected = orders.lines.find((l) => l.event === 'federation_bundle_rejected' && l.reason === 'invalid_bundle');
    expect(rejected).toMatchObject({ level: 'warn', trustDomain: 'partner.example', code: 'FEDERATION_BUNDLE_INVALID', kept: true });
    expect(String(rejected!.file)).toMatch(/\/federation\/partner\.example$/);
    expect(String(rejected!.detail)).toContain('partner.example: not a valid SPIFFE bundle: SPIFFE bundle is not valid JSON');
    expect(rejected).not.toHaveProperty('stack');
    expect(await call(payments, '/partner/orders')).toMatchObject({ status: 200 });
    expect(await call(thirdCaller, '/partner/orders')).toMatchObject({ status: 403 });
  });

  it('refuses a rollback (a lower spiffe_sequence) and keeps the newer bundle', async () => {
    // Partner's bundle at sequence 5 (third.example dropped, so the read is observable), then an
    // older one (sequence 4) of another CA.
    await writeFederation(orders, { 'partner.example': bundleJson(b, 5) });
    await until(async () => (await domains()) === 1, 'the sequence-5 bundle to be read');
    const before = await errors('rollback');
    const impostorCa = await mesh('partner.example');
    await writeFederation(orders, { 'partner.example': bundleJson(impostorCa, 4) });
    await until(async () => (await errors('rollback')) === before + 1, 'the rollback to be refused');
    const line = orders.lines.filter((l) => l.event === 'federation_bundle_rejected' && l.reason === 'rollback').at(-1)!;
    expect(String(line.detail)).toContain('spiffe_sequence 4 is older than the loaded bundle of "partner.example" (spiffe_sequence 5)');
    // B's real callers still pass; a caller of the rolled-back CA does not.
    expect(await call(payments, '/partner/orders')).toMatchObject({ status: 200 });
    await expectRefused(await svidFiles(impostorCa, '/ns/billing/sa/payments'));
  });

  it('refuses a key naming A\'s own trust domain: cluster.local stays anchored by A\'s own CA only', async () => {
    const before = await errors('own_trust_domain');
    await writeFederation(orders, { 'partner.example': bundleJson(b, 5), 'cluster.local.json': bundleJson(unknown, 1) });
    await until(async () => (await errors('own_trust_domain')) === before + 1, 'the own-domain key to be refused');
    expect(await domains()).toBe(1);
    // A cluster.local identity minted by the CA in that file is refused; A's real frontend is not.
    await expectRefused(await forgedSvidFiles(unknown, 'spiffe://cluster.local/ns/web/sa/frontend'), '/local/stock');
    expect(await call(frontend, '/local/stock')).toMatchObject({ status: 200 });
  });

  it('refuses a bundle with no X.509 authority, and a key that is no trust domain', async () => {
    const noAuthorities = await errors('no_x509_authorities');
    const badName = await errors('bad_trust_domain');
    await writeFederation(orders, { 'partner.example': JSON.stringify({ keys: [], spiffe_sequence: 9 }), 'Third.Example': bundleJson(third, 1) });
    await until(async () => (await errors('no_x509_authorities')) === noAuthorities + 1 && (await errors('bad_trust_domain')) === badName + 1, 'both files to be refused');
    expect(await call(payments, '/partner/orders')).toMatchObject({ status: 200 });
    await expectRefused(thirdCaller);
  });

  it('refuses B\'s callers on new connections once B\'s key is removed, and closes the connection B had open', async () => {
    await writeFederation(orders, { 'partner.example': bundleJson(b, 5) });
    await until(async () => (await domains()) === 1, 'partner.example to be loaded again');
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1, cert: payments['tls.crt'], key: payments['tls.key'], ca: a.root.bundlePem, checkServerIdentity: () => undefined });
    try {
      expect(await viaAgent(agent, '/partner/before')).toEqual({ status: 200, reused: false });
      // A TLS 1.3 session ticket B got while it was trusted.
      const ticket = await sessionTicket(payments);
      expect(await resumeWith(payments, ticket)).toEqual({ resumed: true, answered: true });

      await writeFederation(orders, {});
      await until(async () => (await domains()) === 0, 'partner.example to be dropped');
      await expectRefused(payments);
      // Offering the old ticket does not get B around the removal: no resumption, a full handshake, refused.
      const before = await refusedHandshakes();
      expect(await resumeWith(payments, ticket)).toEqual({ resumed: false, answered: false });
      await until(async () => (await refusedHandshakes()) === before + 1, 'the refused handshake to be counted');
      const removed = orders.lines.filter((l) => l.event === 'federation_updated').at(-1);
      expect(removed).toMatchObject({ trustDomains: [], removed: ['partner.example'] });

      // The connection B opened before the removal is closed by orders' sidecar, and said so.
      await until(() => orders.lines.some((l) => l.event === 'federation_peers_closed'), 'the closing of B\'s open connection to be logged');
      expect(orders.lines.find((l) => l.event === 'federation_peers_closed')).toMatchObject({ level: 'warn', trustDomain: 'partner.example', inboundClosed: 1, outboundClosed: 0 });
      // Nothing more gets through from B: the old connection is gone and a new one is refused.
      await expect(viaAgent(agent, '/partner/after')).rejects.toThrow();
    } finally {
      agent.destroy();
    }
    // Federation changes are not SVID rotations.
    expect(orders.lines.filter((l) => l.event === 'svid_rotated')).toEqual([]);
    expect(await orders.metric('meshlet_identity_rotations_total')).toBe(0);
  });

  /** Connects as `caller` and resolves with the session ticket the server sends. */
  function sessionTicket(caller: SvidFiles): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port: orders.inboundPort, cert: caller['tls.crt'], key: caller['tls.key'], ca: a.root.bundlePem, checkServerIdentity: () => undefined, ALPNProtocols: ['http/1.1'] });
      socket.once('session', (session: Buffer) => {
        resolve(session);
        socket.end();
      });
      socket.on('error', reject);
    });
  }

  /** Offers `session`, sends a request, and says whether the session resumed and whether any answer came back. */
  function resumeWith(caller: SvidFiles, session: Buffer): Promise<{ resumed: boolean; answered: boolean }> {
    return new Promise((resolve) => {
      let resumed = false;
      let answered = false;
      const socket = tls.connect({ host: '127.0.0.1', port: orders.inboundPort, cert: caller['tls.crt'], key: caller['tls.key'], ca: a.root.bundlePem, checkServerIdentity: () => undefined, ALPNProtocols: ['http/1.1'], session }, () => {
        resumed = socket.isSessionReused();
        socket.write('GET /partner/orders HTTP/1.1\r\nhost: orders.shop\r\n\r\n');
      });
      socket.on('data', () => {
        answered = true;
        socket.end();
      });
      socket.on('error', () => undefined);
      socket.on('close', () => resolve({ resumed, answered }));
    });
  }

  function viaAgent(agent: https.Agent, path: string): Promise<{ status: number; reused: boolean }> {
    return new Promise((resolve, reject) => {
      const req = https.request({ host: '127.0.0.1', port: orders.inboundPort, path, agent, headers: { host: 'orders.shop' } }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket }));
      });
      req.on('error', reject);
      req.end();
    });
  }
});
