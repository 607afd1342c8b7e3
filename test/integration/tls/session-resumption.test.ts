import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { IdentitySnapshot } from '../../../src/data-plane/identity/svid.ts';
import { StaticSvidSource } from '../../../src/data-plane/identity/sources/static.ts';
import { handshakeFailureReason, MeshTls, SESSION_LIFETIME_CAP_MS, type ExpectedPeer } from '../../../src/data-plane/tls/mesh-tls.ts';
import { sessionPeerCertificate } from '../../../src/data-plane/tls/session-peer.ts';
import { eventually, Fixture, identity, roundTrip, trustDomain, type MeshServer, type TrustDomain } from './mesh-fixture.ts';

/**
 * TLS 1.3 session resumption between sidecars (docs/tls.md "Session resumption"), on real
 * sockets with real SVIDs (issued by an intermediate unless said otherwise, as in production):
 * a resumed connection is really resumed (isSessionReused on both ends), and every identity
 * property of a full handshake still holds on it.
 */
const ORDERS = 'spiffe://cluster.local/ns/shop/sa/orders';
const BILLING = 'spiffe://cluster.local/ns/shop/sa/billing';
const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend';

function leafDer(snapshot: IdentitySnapshot): Buffer {
  return new X509Certificate(snapshot.svid.certChainPem).raw;
}

/** Whether each connection the server accepted was resumed, read before any other listener (the fail-closed gate may destroy it). */
function resumedAtServer(srv: MeshServer): boolean[] {
  const seen: boolean[] = [];
  srv.server.prependListener('secureConnection', (socket: TLSSocket) => seen.push(socket.isSessionReused()));
  return seen;
}

/** A full exchange on a new connection, then (first time) the ticket the server sent is cached. */
async function talk(fx: Fixture, mesh: MeshTls, port: number, expected: ExpectedPeer): Promise<TLSSocket> {
  const socket = await fx.connect(mesh, port, expected);
  expect(await roundTrip(socket, 'ping')).toBe('ping');
  const key = mesh.sessionKey({ host: '127.0.0.1', port }, expected);
  await eventually(() => mesh.sessions.get(key) !== undefined, 'the session to be cached');
  return socket;
}

/**
 * Resolves with the first of 'secureConnect' or the socket's error, and whether the TLS layer
 * resumed a session (read at 'secure', before Node's own handler and meshlet's checks run).
 */
function handshakeOutcome(socket: TLSSocket): Promise<{ result: 'secureConnect' | Error; tlsResumed: boolean | undefined }> {
  let tlsResumed: boolean | undefined;
  socket.prependOnceListener('secure', () => void (tlsResumed = socket.isSessionReused()));
  return new Promise((resolve) => {
    socket.once('secureConnect', () => resolve({ result: 'secureConnect', tlsResumed }));
    socket.once('error', (err) => resolve({ result: err, tlsResumed }));
  });
}

describe('TLS session resumption between sidecars', () => {
  let td: TrustDomain;
  let server: IdentitySnapshot;
  let client: IdentitySnapshot;
  const fx = new Fixture();
  beforeAll(async () => {
    td = await trustDomain('cluster.local');
    server = await identity(td, '/ns/shop/sa/orders');
    client = await identity(td, '/ns/shop/sa/frontend');
  });
  afterEach(() => fx.close());

  for (const intermediate of [true, false]) {
    it(`resumes the next connection to the same destination and identity; both ends still see and verify the peer's SVID (SVIDs issued by ${intermediate ? 'an intermediate' : 'the root'})`, async () => {
      const domain = intermediate ? td : await trustDomain('cluster.local', { intermediate: false });
      const serverId = intermediate ? server : await identity(domain, '/ns/shop/sa/orders');
      const clientId = intermediate ? client : await identity(domain, '/ns/shop/sa/frontend');
      const s = await fx.meshTls(serverId);
      const c = await fx.meshTls(clientId);
      const srv = await fx.server(s.tls);
      const reused = resumedAtServer(srv);

      const first = await talk(fx, c.tls, srv.port, { spiffeId: ORDERS });
      expect(first.isSessionReused()).toBe(false);
      const second = await fx.connect(c.tls, srv.port, { spiffeId: ORDERS });
      expect(await roundTrip(second, 'again')).toBe('again');

      // Really resumed, on both ends.
      expect(second.isSessionReused()).toBe(true);
      expect(reused).toEqual([false, true]);
      // Server side: the session keeps the caller's SVID; getPeerCertificate shows it, and the
      // caller's identity (what the policy is asked about) is verified from it.
      const accepted = srv.accepted[1]!;
      expect(accepted.getPeerCertificate().raw.equals(leafDer(clientId))).toBe(true);
      expect(accepted.getPeerCertificate().subjectaltname).toBe(`URI:${FRONTEND}`);
      expect(srv.verdicts).toEqual([FRONTEND, FRONTEND]);
      expect(s.tls.verifyClient(accepted).spiffeId.id).toBe(FRONTEND);
      // Client side: Node shows no peer certificate on a resumed connection, but the session
      // carries the server's SVID, and that is what meshlet checked and reports.
      expect(sessionPeerCertificate(second.getSession() ?? undefined)?.equals(leafDer(serverId))).toBe(true);
      expect(c.tls.verifyServer(second).spiffeId.id).toBe(ORDERS);
      expect(first.getPeerCertificate().raw.equals(leafDer(serverId))).toBe(true);
    });
  }

  it('never offers a session cached for identity A to a destination expecting identity B', async () => {
    const s = await fx.meshTls(server);
    const c = await fx.meshTls(client);
    const srv = await fx.server(s.tls);
    const target = { host: '127.0.0.1', port: srv.port };
    await talk(fx, c.tls, srv.port, { spiffeId: ORDERS });

    // Same host and port, another expected identity: a full handshake (the server would have
    // resumed any session offered), which the pin refuses.
    const wrong = c.tls.connect(target, { spiffeId: BILLING });
    fx.defer(() => void wrong.destroy());
    const { result, tlsResumed } = await handshakeOutcome(wrong);
    expect(result).toBeInstanceOf(Error);
    expect((result as { code?: string }).code).toBe('TLS_PEER_WRONG_IDENTITY');
    expect(tlsResumed).toBe(false);
    expect(c.tls.sessions.get(c.tls.sessionKey(target, { spiffeId: BILLING }))).toBeUndefined();
    // Pinning the trust domain instead is another key too: it starts with a full handshake.
    const byDomain = await fx.connect(c.tls, srv.port, { trustDomains: ['cluster.local'] });
    expect(byDomain.isSessionReused()).toBe(false);
    // A's session is still there, and still resumes for A.
    const again = await fx.connect(c.tls, srv.port, { spiffeId: ORDERS });
    expect(again.isSessionReused()).toBe(true);
  });

  it("refuses a resumed connection whose session certificate does not match the pinned identity, though the server resumed it", async () => {
    const s = await fx.meshTls(server);
    const c = await fx.meshTls(client);
    const srv = await fx.server(s.tls);
    const target = { host: '127.0.0.1', port: srv.port };
    await talk(fx, c.tls, srv.port, { spiffeId: ORDERS });
    const ordersSession = c.tls.sessions.get(c.tls.sessionKey(target, { spiffeId: ORDERS }))!;

    // What connect() never does by itself: A's session filed under B's key.
    const billingKey = c.tls.sessionKey(target, { spiffeId: BILLING });
    c.tls.sessions.set(billingKey, ordersSession);
    const socket = c.tls.connect(target, { spiffeId: BILLING });
    fx.defer(() => void socket.destroy());
    const { result, tlsResumed } = await handshakeOutcome(socket);
    // The TLS layer did resume (the server found its own ticket); meshlet's check refused it
    // before 'secureConnect', as a full handshake's identity check would have.
    expect(tlsResumed).toBe(true);
    expect(result).toBeInstanceOf(Error);
    expect((result as { code?: string }).code).toBe('TLS_PEER_WRONG_IDENTITY');
    expect(handshakeFailureReason(result)).toBe('wrong_identity');
    expect(c.tls.sessions.get(billingKey)).toBeUndefined();
  });

  it('refuses a resumed connection whose session certificate is not the one verified when the session was made', async () => {
    const s = await fx.meshTls(server);
    const billing = await fx.meshTls(await identity(td, '/ns/shop/sa/billing'));
    const c = await fx.meshTls(client);
    const srv = await fx.server(s.tls);
    const billingSrv = await fx.server(billing.tls);
    const target = { host: '127.0.0.1', port: srv.port };
    await talk(fx, c.tls, srv.port, { spiffeId: ORDERS });
    await talk(fx, c.tls, billingSrv.port, { spiffeId: BILLING });
    const ordersKey = c.tls.sessionKey(target, { spiffeId: ORDERS });
    const ordersSession = c.tls.sessions.get(ordersKey)!;
    const billingSession = c.tls.sessions.get(c.tls.sessionKey({ host: '127.0.0.1', port: billingSrv.port }, { spiffeId: BILLING }))!;

    // orders' session, but a verified chain that is billing's: the session's certificate does not match it.
    c.tls.sessions.set(ordersKey, { ...ordersSession, chain: billingSession.chain });
    const socket = c.tls.connect(target, { spiffeId: ORDERS });
    fx.defer(() => void socket.destroy());
    const { result, tlsResumed } = await handshakeOutcome(socket);
    expect(tlsResumed).toBe(true);
    expect((result as { code?: string }).code).toBe('TLS_PEER_SESSION_MISMATCH');
    expect(handshakeFailureReason(result)).toBe('wrong_identity');
    expect(c.tls.sessions.get(ordersKey)).toBeUndefined();
  });

  it('our own rotation empties the cache: the next connection is a full handshake with the new SVID', async () => {
    const s = await fx.meshTls(server);
    const c = await fx.meshTls(client);
    const srv = await fx.server(s.tls);
    await talk(fx, c.tls, srv.port, { spiffeId: ORDERS });
    expect(c.tls.sessions.size).toBe(1);

    const rotated = await identity(td, '/ns/shop/sa/frontend');
    c.source.rotate(rotated);
    expect(c.tls.sessions.size).toBe(0);
    const next = await fx.connect(c.tls, srv.port, { spiffeId: ORDERS });
    expect(next.isSessionReused()).toBe(false);
    await eventually(() => srv.accepted.length === 2, 'the second connection');
    expect(srv.accepted[1]!.getPeerCertificate().raw.equals(leafDer(rotated))).toBe(true);
  });

  it("the server's rotation replaces its ticket keys: a session from before is not resumed, the connection still succeeds", async () => {
    const s = await fx.meshTls(server);
    const c = await fx.meshTls(client);
    const srv = await fx.server(s.tls);
    const reused = resumedAtServer(srv);
    const keysBefore = s.tls.serverOptions().ticketKeys as Buffer;
    await talk(fx, c.tls, srv.port, { spiffeId: ORDERS });

    s.source.rotate(await identity(td, '/ns/shop/sa/orders'));
    expect((s.tls.serverOptions().ticketKeys as Buffer).equals(keysBefore)).toBe(false);
    expect(c.tls.sessions.size).toBe(1); // the client still offers its session…
    const next = await fx.connect(c.tls, srv.port, { spiffeId: ORDERS });
    expect(next.isSessionReused()).toBe(false); // …which the rotated server does not resume
    expect(await roundTrip(next, 'still works')).toBe('still works');
    expect(reused).toEqual([false, false]);
  });

  it("a session made under a CA the server's bundle no longer holds is not resumed, and the caller is refused", async () => {
    const otherCa = await trustDomain('cluster.local'); // same trust domain name, another root
    const s = await fx.meshTls(server);
    const c = await fx.meshTls(client);
    const srv = await fx.server(s.tls);
    const reused = resumedAtServer(srv);
    await talk(fx, c.tls, srv.port, { spiffeId: ORDERS });

    // The server's bundle rotates: the root that issued the client's SVID is removed.
    s.source.rotate({ svid: server.svid, bundles: new Map([['cluster.local', otherCa.root.bundlePem]]) });
    const next = await fx.connect(c.tls, srv.port, { spiffeId: ORDERS });
    expect(next.isSessionReused()).toBe(false);
    await eventually(() => srv.verdicts.length === 2, 'the server to judge the second caller');
    expect(srv.verdicts[1]).toBe('SVID_UNKNOWN_AUTHORITY');
    expect(reused).toEqual([false, false]);
  });

  it("a CA removed from the client's bundle: the cached session is dropped, the full handshake fails", async () => {
    const otherCa = await trustDomain('cluster.local');
    const s = await fx.meshTls(server);
    const c = await fx.meshTls(client);
    const srv = await fx.server(s.tls);
    const reused = resumedAtServer(srv);
    await talk(fx, c.tls, srv.port, { spiffeId: ORDERS });

    c.source.rotate({ svid: client.svid, bundles: new Map([['cluster.local', otherCa.root.bundlePem]]) });
    expect(c.tls.sessions.size).toBe(0);
    const socket = c.tls.connect({ host: '127.0.0.1', port: srv.port }, { spiffeId: ORDERS });
    fx.defer(() => void socket.destroy());
    const { result } = await handshakeOutcome(socket);
    expect(result).toBeInstanceOf(Error);
    expect(handshakeFailureReason(result)).toBe('unknown_ca');
    expect(reused.filter(Boolean)).toEqual([]);
  });

  it('a session lives at most the cap, and never past either SVID', async () => {
    const shortServer = await identity(td, '/ns/shop/sa/orders', { ttlMs: 30 * 60_000 });
    const shortClient = await identity(td, '/ns/shop/sa/frontend', { ttlMs: 20 * 60_000 });
    const longLived = await fx.meshTls(server);
    const longClient = await fx.meshTls(client);
    const shortLived = await fx.meshTls(shortServer);
    const shortC = await fx.meshTls(shortClient);

    // Inbound: tickets stop being accepted after the cap, or when our SVID ends if sooner.
    expect(longLived.tls.serverOptions().sessionTimeout).toBe(SESSION_LIFETIME_CAP_MS / 1000);
    const shortTimeout = shortLived.tls.serverOptions().sessionTimeout!;
    expect(shortTimeout).toBeLessThanOrEqual(30 * 60);
    expect(shortTimeout).toBeGreaterThan(25 * 60);

    // Outbound: 24 h SVIDs on both ends -> the cap, from the full handshake.
    const srvLong = await fx.server(longLived.tls);
    await talk(fx, longClient.tls, srvLong.port, { spiffeId: ORDERS });
    const capped = longClient.tls.sessions.get(longClient.tls.sessionKey({ host: '127.0.0.1', port: srvLong.port }, { spiffeId: ORDERS }))!;
    expect(capped.expiresAt - capped.establishedAt).toBe(SESSION_LIFETIME_CAP_MS);
    // A server whose SVID ends in 30 min -> its end.
    const srvShort = await fx.server(shortLived.tls);
    await talk(fx, longClient.tls, srvShort.port, { spiffeId: ORDERS });
    const byServer = longClient.tls.sessions.get(longClient.tls.sessionKey({ host: '127.0.0.1', port: srvShort.port }, { spiffeId: ORDERS }))!;
    expect(byServer.expiresAt).toBe(shortServer.svid.notAfter.getTime());
    // Our own SVID ends in 20 min -> ours.
    await talk(fx, shortC.tls, srvLong.port, { spiffeId: ORDERS });
    const byClient = shortC.tls.sessions.get(shortC.tls.sessionKey({ host: '127.0.0.1', port: srvLong.port }, { spiffeId: ORDERS }))!;
    expect(byClient.expiresAt).toBe(shortClient.svid.notAfter.getTime());
  });

  describe('MeshTlsOptions.sessionResumption: false (MESHLET_TLS_SESSION_RESUMPTION=off)', () => {
    async function meshTlsOff(snapshot: IdentitySnapshot): Promise<MeshTls> {
      const source = new StaticSvidSource(snapshot);
      await source.start();
      const tls = new MeshTls(source, { sessionResumption: false });
      fx.defer(async () => {
        tls.close();
        await source.close();
      });
      return tls;
    }

    it('a client with it off neither caches nor offers sessions', async () => {
      const s = await fx.meshTls(server);
      const c = await meshTlsOff(client);
      expect(c.sessionResumption).toBe(false);
      const srv = await fx.server(s.tls);
      for (let i = 0; i < 2; i++) {
        const socket = await fx.connect(c, srv.port, { spiffeId: ORDERS });
        expect(await roundTrip(socket, 'x')).toBe('x');
        expect(socket.isSessionReused()).toBe(false);
      }
      expect(c.sessions.size).toBe(0);
    });

    it('a server with it off resumes no session, even one a client offers', async () => {
      const s = await meshTlsOff(server);
      const c = await fx.meshTls(client);
      const srv = await fx.server(s);
      const reused = resumedAtServer(srv);
      const first = await fx.connect(c.tls, srv.port, { spiffeId: ORDERS });
      expect(await roundTrip(first, 'x')).toBe('x');
      // It still sends (stateful) tickets, which the client keeps and offers; they never resume.
      const key = c.tls.sessionKey({ host: '127.0.0.1', port: srv.port }, { spiffeId: ORDERS });
      await eventually(() => c.tls.sessions.get(key) !== undefined, 'a ticket');
      const second = await fx.connect(c.tls, srv.port, { spiffeId: ORDERS });
      expect(await roundTrip(second, 'y')).toBe('y');
      expect(second.isSessionReused()).toBe(false);
      expect(reused).toEqual([false, false]);
    });
  });
});
