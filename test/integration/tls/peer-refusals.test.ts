import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { handshakeFailureReason } from '../../../src/data-plane/tls/mesh-tls.ts';
import { eventually, Fixture, identity, trustDomain, type TrustDomain } from './mesh-fixture.ts';

describe('mesh mTLS refuses peers the X.509-SVID rules do not accept', () => {
  let home: TrustDomain;
  let partner: TrustDomain;
  let stranger: TrustDomain;
  const fx = new Fixture();
  beforeAll(async () => {
    [home, partner, stranger] = await Promise.all([trustDomain('cluster.local'), trustDomain('partner.example'), trustDomain('cluster.local')]);
  });
  afterEach(() => fx.close());

  /** Connects `client` to a mesh server and returns the server's verdict on it. */
  async function serverVerdict(serverIdentity: Parameters<Fixture['meshTls']>[0], clientIdentity: Parameters<Fixture['meshTls']>[0]) {
    const server = await fx.meshTls(serverIdentity);
    const client = await fx.meshTls(clientIdentity);
    const srv = await fx.server(server.tls);
    // The client trusts the server; in TLS 1.3 it finishes before the server judges it.
    fx.connect(client.tls, srv.port, { trustDomains: [serverIdentity.svid.spiffeId.trustDomain] }).catch(() => {});
    await eventually(() => srv.verdicts.length > 0, 'the server to judge the client');
    let error: unknown;
    try {
      server.tls.verifyClient(srv.accepted[0]!);
    } catch (err) {
      error = err;
    }
    if (error !== undefined) await eventually(() => srv.accepted[0]!.destroyed, 'the refused connection to be closed');
    return { verdict: srv.verdicts[0], error, socket: srv.accepted[0]! };
  }

  it('refuses a client certificate from an unknown root (unknown_ca)', async () => {
    // Same trust domain name, different root: only the bundle's roots anchor cluster.local.
    const impostor = await identity(stranger, '/ns/shop/sa/frontend');
    // The impostor trusts the real server (so its side of the handshake completes).
    const { verdict, error } = await serverVerdict(await identity(home, '/ns/shop/sa/orders'), { ...impostor, bundles: new Map([['cluster.local', home.root.bundlePem]]) });
    expect(verdict).toBe('SVID_UNKNOWN_AUTHORITY');
    expect(error).toMatchObject({ name: 'TlsPeerError', code: 'SVID_UNKNOWN_AUTHORITY' });
    expect((error as Error).cause).toMatchObject({ name: 'SvidVerifyError' });
    expect(handshakeFailureReason(error)).toBe('unknown_ca');
  });

  it('refuses a leaf claiming trust domain A signed by trust domain B\'s CA, though B is trusted (the union trap)', async () => {
    // The server trusts both bundles. A CA of partner.example mints an SVID that claims a
    // cluster.local identity. OpenSSL, verifying against the union of roots, would accept it.
    const forged = await identity(partner, '/ns/shop/sa/admin', { claimTrustDomain: 'cluster.local', alsoTrust: [home] });
    expect(forged.svid.spiffeId.id).toBe('spiffe://cluster.local/ns/shop/sa/admin');
    const { verdict, error, socket } = await serverVerdict(await identity(home, '/ns/shop/sa/orders', { alsoTrust: [partner] }), forged);
    // The trap is real: OpenSSL's own verdict against the union store was "authorized".
    expect(socket.authorized).toBe(true);
    expect(verdict).toBe('SVID_UNKNOWN_AUTHORITY');
    expect(handshakeFailureReason(error)).toBe('unknown_ca');
  });

  it('still accepts a genuine workload of the federated trust domain', async () => {
    const { verdict } = await serverVerdict(
      await identity(home, '/ns/shop/sa/orders', { alsoTrust: [partner] }),
      await identity(partner, '/ns/billing/sa/invoicer', { alsoTrust: [home] }),
    );
    expect(verdict).toBe('spiffe://partner.example/ns/billing/sa/invoicer');
  });

  it('refuses a client from a trust domain it holds no bundle for', async () => {
    const { verdict, error } = await serverVerdict(
      await identity(home, '/ns/shop/sa/orders'),
      await identity(partner, '/ns/billing/sa/invoicer', { alsoTrust: [home] }),
    );
    expect(verdict).toBe('SVID_UNTRUSTED_TRUST_DOMAIN');
    expect(handshakeFailureReason(error)).toBe('unknown_ca');
  });

  it('refuses an expired client SVID (expired)', async () => {
    const anHourAgo = new Date(Date.now() - 3_600_000);
    const expired = await identity(home, '/ns/shop/sa/frontend', { now: anHourAgo, ttlMs: 5 * 60_000 });
    expect(expired.svid.notAfter.getTime()).toBeLessThan(Date.now());
    const { verdict, error } = await serverVerdict(await identity(home, '/ns/shop/sa/orders'), expired);
    expect(verdict).toBe('SVID_EXPIRED');
    expect(handshakeFailureReason(error)).toBe('expired');
  });

  it('client side: refuses a server from an unknown root, and an expired server SVID', async () => {
    const client = await fx.meshTls(await identity(home, '/ns/shop/sa/frontend'));
    const unknown = await fx.meshTls(await identity(stranger, '/ns/shop/sa/orders'));
    const unknownSrv = await fx.server(unknown.tls);
    const err1 = await fx.connect(client.tls, unknownSrv.port).then(() => undefined, (e: unknown) => e);
    expect(err1).toBeInstanceOf(Error);
    expect(handshakeFailureReason(err1)).toBe('unknown_ca');

    const expired = await fx.meshTls(await identity(home, '/ns/shop/sa/orders', { now: new Date(Date.now() - 3_600_000), ttlMs: 5 * 60_000 }));
    const expiredSrv = await fx.server(expired.tls);
    const err2 = await fx.connect(client.tls, expiredSrv.port).then(() => undefined, (e: unknown) => e);
    expect(err2).toBeInstanceOf(Error);
    expect(handshakeFailureReason(err2)).toBe('expired');
  });

  it('client side: refuses the union trap too', async () => {
    const client = await fx.meshTls(await identity(home, '/ns/shop/sa/frontend', { alsoTrust: [partner] }));
    const forged = await fx.meshTls(await identity(partner, '/ns/shop/sa/orders', { claimTrustDomain: 'cluster.local', alsoTrust: [home] }));
    const srv = await fx.server(forged.tls);
    const err = await fx.connect(client.tls, srv.port, { spiffeId: 'spiffe://cluster.local/ns/shop/sa/orders' }).then(() => undefined, (e: unknown) => e);
    expect(err).toMatchObject({ name: 'TlsPeerError', code: 'SVID_UNKNOWN_AUTHORITY' });
  });
});
