import { connect as tlsConnect, createServer as createTlsServer, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { IdentitySnapshot } from '../../../src/data-plane/identity/svid.ts';
import { StaticSvidSource } from '../../../src/data-plane/identity/sources/static.ts';
import { TlsMetrics } from '../../../src/data-plane/metrics/tls-metrics.ts';
import { ConnectionRegistry, type ConnectionDirection, type ConnectionRole } from '../../../src/data-plane/proxy/connection-registry.ts';
import { handshakeFailureReason, MeshTls, negotiatedGroup, type MeshTlsOptions } from '../../../src/data-plane/tls/mesh-tls.ts';
import { eventually, Fixture, identity, outcome, roundTrip, trustDomain, type MeshServer } from './mesh-fixture.ts';
import { clientHellos, GROUP, relay, serverHellos, type Relay } from './tls-wire.ts';

/**
 * MESHLET_TLS_KEY_EXCHANGE between sidecars (docs/tls.md "Key exchange"), on real sockets with
 * CA-issued SVIDs: what each setting offers on the wire (the ClientHello read from a relay
 * between the two ends), what is negotiated with meshlet and non-meshlet peers, what both ends
 * and their /connections records report, refusals and how they are counted, and resumed
 * connections.
 */
const ORDERS = 'spiffe://cluster.local/ns/shop/sa/orders';
const MLKEM_SHARE_BYTES = 1216; // X25519MLKEM768 client key share: ML-KEM-768 encapsulation key (1184) + X25519 (32)

let serverId: IdentitySnapshot;
let clientId: IdentitySnapshot;
const fx = new Fixture();

beforeAll(async () => {
  const td = await trustDomain('cluster.local');
  serverId = await identity(td, '/ns/shop/sa/orders');
  clientId = await identity(td, '/ns/shop/sa/frontend');
});
afterEach(() => fx.close());

async function meshTls(snapshot: IdentitySnapshot, options: MeshTlsOptions = {}): Promise<MeshTls> {
  const source = new StaticSvidSource(snapshot);
  await source.start();
  const tls = new MeshTls(source, options);
  fx.defer(async () => {
    tls.close();
    await source.close();
  });
  return tls;
}

async function wire(port: number): Promise<Relay> {
  const r = await relay(port);
  fx.defer(() => r.close());
  return r;
}

/** What /connections would say of `socket`: the registry's record, made as the proxy makes it. */
function recorded(socket: TLSSocket, direction: ConnectionDirection, role: ConnectionRole): { tlsGroup: string | null; resumed: boolean } {
  const { tlsGroup, resumed } = new ConnectionRegistry().track(direction, role, socket).snapshot();
  return { tlsGroup, resumed };
}

/** A TLS 1.3 client that is not meshlet: the frontend's SVID, OpenSSL's verification only, the groups given. */
function foreignClient(port: number, ecdhCurve: string, session?: Buffer): TLSSocket {
  const socket = tlsConnect({
    host: '127.0.0.1',
    port,
    cert: clientId.svid.certChainPem,
    key: clientId.svid.privateKeyPem,
    ca: [...clientId.bundles.values()],
    checkServerIdentity: () => undefined,
    minVersion: 'TLSv1.3',
    ecdhCurve,
    ...(session ? { session } : {}),
  });
  fx.defer(() => void socket.destroy());
  return socket;
}

function connected(socket: TLSSocket): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    socket.once('secureConnect', () => {
      socket.off('error', reject);
      socket.on('error', () => {});
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/** A TLS 1.3 server that is not meshlet (the orders SVID, client certificate required), echoing. */
async function foreignServer(ecdhCurve: string): Promise<{ port: number; accepted: TLSSocket[] }> {
  const accepted: TLSSocket[] = [];
  const server = createTlsServer(
    { cert: serverId.svid.certChainPem, key: serverId.svid.privateKeyPem, ca: [...serverId.bundles.values()], requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3', ecdhCurve },
    (socket) => {
      accepted.push(socket);
      socket.on('error', () => {});
      socket.pipe(socket);
    },
  );
  server.on('tlsClientError', () => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fx.defer(
    () =>
      new Promise<void>((resolve) => {
        for (const s of accepted) s.destroy();
        server.close(() => resolve());
      }),
  );
  return { port: (server.address() as AddressInfo).port, accepted };
}

/** The server end of the n-th connection a mesh server accepted, once its handshake is done. */
async function serverEnd(srv: MeshServer, n: number): Promise<TLSSocket> {
  await eventually(() => srv.accepted.length > n, `connection ${n + 1} to be accepted`);
  return srv.accepted[n]!;
}

describe('key exchange between sidecars', () => {
  it('default (hybrid): two sidecar contexts negotiate X25519MLKEM768, offered first with an X25519 share beside it; both ends and their /connections records say so', async () => {
    const s = await meshTls(serverId);
    const c = await meshTls(clientId);
    expect([s.keyExchange, c.keyExchange]).toEqual(['hybrid', 'hybrid']);
    const srv = await fx.server(s);
    const r = await wire(srv.port);
    const client = await fx.connect(c, r.port, { spiffeId: ORDERS });
    expect(await roundTrip(client, 'ping')).toBe('ping');
    const server = await serverEnd(srv, 0);

    const [hello, ...retried] = clientHellos(r.fromClient[0]!);
    expect(retried).toEqual([]);
    expect(hello!.groups).toEqual([GROUP.X25519MLKEM768, GROUP.X25519, GROUP.secp256r1, GROUP.secp384r1]);
    expect(hello!.keyShares).toEqual([{ group: GROUP.X25519MLKEM768, length: MLKEM_SHARE_BYTES }, { group: GROUP.X25519, length: 32 }]);
    expect(serverHellos(r.fromServer[0]!)).toEqual([{ group: GROUP.X25519MLKEM768, helloRetryRequest: false }]);

    expect(negotiatedGroup(client)).toBe('X25519MLKEM768');
    expect(negotiatedGroup(server)).toBe('X25519MLKEM768');
    expect(recorded(client, 'outbound', 'originated')).toEqual({ tlsGroup: 'X25519MLKEM768', resumed: false });
    expect(recorded(server, 'inbound', 'accepted')).toEqual({ tlsGroup: 'X25519MLKEM768', resumed: false });
    expect(srv.verdicts).toEqual(['spiffe://cluster.local/ns/shop/sa/frontend']);
  });

  it('default (hybrid) still connects a peer that offers only X25519, in one round trip, and records X25519 — as server and as client', async () => {
    // A caller without ML-KEM: the hybrid server picks X25519 from its classical tuple.
    const s = await meshTls(serverId);
    const srv = await fx.server(s);
    const r = await wire(srv.port);
    const caller = await connected(foreignClient(r.port, 'X25519'));
    expect(await roundTrip(caller, 'ping')).toBe('ping');
    const server = await serverEnd(srv, 0);
    expect(negotiatedGroup(server)).toBe('X25519');
    expect(recorded(server, 'inbound', 'accepted').tlsGroup).toBe('X25519');
    expect(srv.verdicts).toEqual(['spiffe://cluster.local/ns/shop/sa/frontend']);
    expect(serverHellos(r.fromServer[0]!)).toEqual([{ group: GROUP.X25519, helloRetryRequest: false }]);

    // A destination without ML-KEM: the X25519 share the hybrid client sent beside the hybrid one
    // is taken at once (no HelloRetryRequest).
    const c = await meshTls(clientId);
    const classicalServer = await foreignServer('X25519');
    const r2 = await wire(classicalServer.port);
    const client = await fx.connect(c, r2.port, { spiffeId: ORDERS });
    expect(await roundTrip(client, 'pong')).toBe('pong');
    expect(clientHellos(r2.fromClient[0]!)).toHaveLength(1);
    expect(serverHellos(r2.fromServer[0]!)).toEqual([{ group: GROUP.X25519, helloRetryRequest: false }]);
    expect(negotiatedGroup(client)).toBe('X25519');
    expect(recorded(client, 'outbound', 'originated').tlsGroup).toBe('X25519');
  });

  it('default (hybrid) reaches a P-256-only peer too (after a HelloRetryRequest for a P-256 share), recorded as secp256r1', async () => {
    const c = await meshTls(clientId);
    const p256 = await foreignServer('P-256');
    const r = await wire(p256.port);
    const client = await fx.connect(c, r.port, { spiffeId: ORDERS });
    expect(await roundTrip(client, 'ping')).toBe('ping');
    expect(serverHellos(r.fromServer[0]!)).toEqual([
      { group: GROUP.secp256r1, helloRetryRequest: true },
      { group: GROUP.secp256r1, helloRetryRequest: false },
    ]);
    expect(negotiatedGroup(client)).toBe('secp256r1');
    expect(negotiatedGroup(p256.accepted[0]!)).toBe('secp256r1');
  });

  it('a hybrid server does not settle for X25519 with a client that supports X25519MLKEM768 but predicted only an X25519 share: it asks again', async () => {
    const s = await meshTls(serverId);
    const srv = await fx.server(s);
    const r = await wire(srv.port);
    const caller = await connected(foreignClient(r.port, 'X25519MLKEM768:*X25519'));
    expect(await roundTrip(caller, 'ping')).toBe('ping');
    const hellos = clientHellos(r.fromClient[0]!);
    expect(hellos.map((h) => h.keyShares.map((k) => k.group))).toEqual([[GROUP.X25519], [GROUP.X25519MLKEM768]]);
    expect(serverHellos(r.fromServer[0]!)).toEqual([
      { group: GROUP.X25519MLKEM768, helloRetryRequest: true },
      { group: GROUP.X25519MLKEM768, helloRetryRequest: false },
    ]);
    expect(negotiatedGroup(await serverEnd(srv, 0))).toBe('X25519MLKEM768');
  });

  it('classical offers no ML-KEM (X25519, P-256, P-384; one X25519 share) and accepts none: X25519 with a hybrid peer either way', async () => {
    const hybridServer = await fx.server(await meshTls(serverId));
    const classicalClient = await meshTls(clientId, { keyExchange: 'classical' });
    expect(classicalClient.keyExchange).toBe('classical');
    const r = await wire(hybridServer.port);
    const client = await fx.connect(classicalClient, r.port, { spiffeId: ORDERS });
    expect(await roundTrip(client, 'ping')).toBe('ping');
    const [hello, ...retried] = clientHellos(r.fromClient[0]!);
    expect(retried).toEqual([]);
    expect(hello!.groups).toEqual([GROUP.X25519, GROUP.secp256r1, GROUP.secp384r1]);
    expect(hello!.keyShares).toEqual([{ group: GROUP.X25519, length: 32 }]);
    expect(negotiatedGroup(client)).toBe('X25519');
    expect(negotiatedGroup(await serverEnd(hybridServer, 0))).toBe('X25519');

    // A classical server: the hybrid client's X25519 share is taken, ML-KEM is not.
    const classicalServer = await fx.server(await meshTls(serverId, { keyExchange: 'classical' }));
    const r2 = await wire(classicalServer.port);
    const hybrid = await fx.connect(await meshTls(clientId), r2.port, { spiffeId: ORDERS });
    expect(await roundTrip(hybrid, 'pong')).toBe('pong');
    expect(clientHellos(r2.fromClient[0]!)[0]!.groups[0]).toBe(GROUP.X25519MLKEM768);
    expect(serverHellos(r2.fromServer[0]!)).toEqual([{ group: GROUP.X25519, helloRetryRequest: false }]);
    expect(negotiatedGroup(hybrid)).toBe('X25519');
    expect(recorded(await serverEnd(classicalServer, 0), 'inbound', 'accepted').tlsGroup).toBe('X25519');
  });

  it('pq-only offers X25519MLKEM768 alone and connects with hybrid peers either way', async () => {
    const pqServer = await fx.server(await meshTls(serverId, { keyExchange: 'pq-only' }));
    const r = await wire(pqServer.port);
    const hybrid = await fx.connect(await meshTls(clientId), r.port, { spiffeId: ORDERS });
    expect(await roundTrip(hybrid, 'ping')).toBe('ping');
    expect(negotiatedGroup(hybrid)).toBe('X25519MLKEM768');
    expect(negotiatedGroup(await serverEnd(pqServer, 0))).toBe('X25519MLKEM768');

    const hybridServer = await fx.server(await meshTls(serverId));
    const r2 = await wire(hybridServer.port);
    const pq = await fx.connect(await meshTls(clientId, { keyExchange: 'pq-only' }), r2.port, { spiffeId: ORDERS });
    expect(await roundTrip(pq, 'pong')).toBe('pong');
    const [hello] = clientHellos(r2.fromClient[0]!);
    expect(hello!.groups).toEqual([GROUP.X25519MLKEM768]);
    expect(hello!.keyShares).toEqual([{ group: GROUP.X25519MLKEM768, length: MLKEM_SHARE_BYTES }]);
    expect(negotiatedGroup(pq)).toBe('X25519MLKEM768');
  });

  it('pq-only refuses a classical-only peer, as server and as client: a handshake failure with reason no_shared_group, counted', async () => {
    const metrics = new TlsMetrics(new Registry());
    const count = async (direction: string): Promise<number> => {
      const m = await metrics.failures.get();
      return m.values.find((v) => v.labels.direction === direction && v.labels.reason === 'no_shared_group')?.value ?? 0;
    };

    // Server side: a classical sidecar calls a pq-only one.
    const pqTls = await meshTls(serverId, { keyExchange: 'pq-only' });
    const pqServer = await fx.server(pqTls);
    pqServer.server.on('tlsClientError', (err) => metrics.handshakeFailed('inbound', err));
    const classical = await meshTls(clientId, { keyExchange: 'classical' });
    const refused = classical.connect({ host: '127.0.0.1', port: pqServer.port }, { spiffeId: ORDERS });
    fx.defer(() => void refused.destroy());
    const clientErr = await outcome(refused);
    expect(clientErr).toBeInstanceOf(Error);
    metrics.handshakeFailed('outbound', clientErr);
    expect(handshakeFailureReason(clientErr)).toBe('no_shared_group');
    await eventually(() => pqServer.clientErrors.length === 1, 'the server to report the failed handshake');
    expect((pqServer.clientErrors[0] as { code?: string }).code).toBe('ERR_SSL_NO_SUITABLE_KEY_SHARE');
    expect(handshakeFailureReason(pqServer.clientErrors[0])).toBe('no_shared_group');
    expect(pqServer.accepted).toEqual([]);
    // A non-meshlet caller with X25519 only: refused the same way.
    expect(handshakeFailureReason(await outcome(foreignClient(pqServer.port, 'X25519')))).toBe('no_shared_group');
    await eventually(() => pqServer.clientErrors.length === 2, 'the second refusal');

    // Client side: a pq-only sidecar calls a classical one.
    const classicalServer = await fx.server(await meshTls(serverId, { keyExchange: 'classical' }));
    const pqClient = await meshTls(clientId, { keyExchange: 'pq-only' });
    const refused2 = pqClient.connect({ host: '127.0.0.1', port: classicalServer.port }, { spiffeId: ORDERS });
    fx.defer(() => void refused2.destroy());
    const clientErr2 = await outcome(refused2);
    metrics.handshakeFailed('outbound', clientErr2);
    expect(handshakeFailureReason(clientErr2)).toBe('no_shared_group');
    await eventually(() => classicalServer.clientErrors.length === 1, 'the classical server to report it');
    expect(handshakeFailureReason(classicalServer.clientErrors[0])).toBe('no_shared_group');

    expect(await count('inbound')).toBe(2);
    expect(await count('outbound')).toBe(2);
  });

  it('an unknown setting is refused when the TLS layer is built (TLS_BAD_KEY_EXCHANGE)', async () => {
    const source = new StaticSvidSource(serverId);
    await source.start();
    fx.defer(() => source.close());
    let threw: unknown;
    try {
      new MeshTls(source, { keyExchange: 'kyber' as MeshTlsOptions['keyExchange'] });
    } catch (err) {
      threw = err;
    }
    expect(threw).toMatchObject({ name: 'TlsSetupError', code: 'TLS_BAD_KEY_EXCHANGE', message: 'key exchange "kyber" is not one of hybrid, classical, pq-only' });
  });
});

describe('key exchange on resumed connections', () => {
  it('a resumed TLS 1.3 connection makes a fresh X25519MLKEM768 exchange (psk_dhe_ke): both ends and /connections say resumed and X25519MLKEM768', async () => {
    const s = await meshTls(serverId);
    const c = await meshTls(clientId);
    const srv = await fx.server(s);
    const r = await wire(srv.port);
    const expected = { spiffeId: ORDERS };
    const first = await fx.connect(c, r.port, expected);
    expect(await roundTrip(first, 'ping')).toBe('ping');
    await eventually(() => c.sessions.get(c.sessionKey({ host: '127.0.0.1', port: r.port }, expected)) !== undefined, 'the session to be cached');

    const second = await fx.connect(c, r.port, expected);
    expect(await roundTrip(second, 'again')).toBe('again');
    const server = await serverEnd(srv, 1);
    expect([second.isSessionReused(), server.isSessionReused()]).toEqual([true, true]);
    // The resumed hello carries key shares again and the server answers one: a new key exchange.
    expect(clientHellos(r.fromClient[1]!)[0]!.keyShares.map((k) => k.group)).toEqual([GROUP.X25519MLKEM768, GROUP.X25519]);
    expect(serverHellos(r.fromServer[1]!)).toEqual([{ group: GROUP.X25519MLKEM768, helloRetryRequest: false }]);
    expect(recorded(second, 'outbound', 'originated')).toEqual({ tlsGroup: 'X25519MLKEM768', resumed: true });
    expect(recorded(server, 'inbound', 'accepted')).toEqual({ tlsGroup: 'X25519MLKEM768', resumed: true });
    expect(srv.verdicts).toEqual(['spiffe://cluster.local/ns/shop/sa/frontend', 'spiffe://cluster.local/ns/shop/sa/frontend']);
  });

  it('the group reported is the resumed connection\'s own, not that of the handshake that made the session', async () => {
    const srv = await fx.server(await meshTls(serverId));
    let session: Buffer | undefined;
    const first = foreignClient(srv.port, 'X25519');
    first.on('session', (s: Buffer) => (session = s));
    await connected(first);
    expect(await roundTrip(first, 'ping')).toBe('ping');
    await eventually(() => session !== undefined, 'a session ticket');
    expect(negotiatedGroup(await serverEnd(srv, 0))).toBe('X25519');

    const resumed = await connected(foreignClient(srv.port, '*X25519MLKEM768:X25519', session));
    expect(await roundTrip(resumed, 'again')).toBe('again');
    const server = await serverEnd(srv, 1);
    expect([resumed.isSessionReused(), server.isSessionReused()]).toEqual([true, true]);
    expect(negotiatedGroup(resumed)).toBe('X25519MLKEM768');
    expect(negotiatedGroup(server)).toBe('X25519MLKEM768');
    expect(recorded(server, 'inbound', 'accepted')).toEqual({ tlsGroup: 'X25519MLKEM768', resumed: true });
  });
});
