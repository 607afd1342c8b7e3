import * as http2 from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { StaticSvidSource } from '../../../src/data-plane/identity/sources/static.ts';
import type { IdentitySnapshot } from '../../../src/data-plane/identity/svid.ts';
import { handshakeFailureReason, MeshTls } from '../../../src/data-plane/tls/mesh-tls.ts';
import { eventually, Fixture, identity, outcome, roundTrip, trustDomain, type MeshServer } from '../tls/mesh-fixture.ts';

/**
 * The TLS layer's half of revocation (docs/revocation.md "What the sidecar does"), on real
 * sockets with real SVIDs: a revoked peer is refused on full AND resumed handshakes, both
 * directions; closeRevokedPeers() closes what is open and drops the sessions of revoked
 * servers; removing the ID re-admits it.
 */
const ORDERS = 'spiffe://cluster.local/ns/shop/sa/orders';
const FRONTEND = 'spiffe://cluster.local/ns/web/sa/frontend';

const fx = new Fixture();
let serverId: IdentitySnapshot;
let clientId: IdentitySnapshot;

beforeAll(async () => {
  const td = await trustDomain('cluster.local');
  serverId = await identity(td, '/ns/shop/sa/orders');
  clientId = await identity(td, '/ns/web/sa/frontend');
});
afterEach(() => fx.close());

/** A MeshTls (resumption on, the default) checking `revoked`, a plain Set standing in for the list in force. */
async function meshTls(snapshot: IdentitySnapshot, revoked?: Set<string>): Promise<MeshTls> {
  const source = new StaticSvidSource(snapshot);
  await source.start();
  const tls = new MeshTls(source, revoked ? { revoked } : {});
  fx.defer(async () => {
    tls.close();
    await source.close();
  });
  return tls;
}

/** Whether each connection the server accepted was resumed, read before the fail-closed gate runs. */
function resumedAtServer(srv: MeshServer): boolean[] {
  const seen: boolean[] = [];
  srv.server.prependListener('secureConnection', (socket: TLSSocket) => seen.push(socket.isSessionReused()));
  return seen;
}

/** The server ended the connection: a close, or a reset when our bytes were in flight. */
async function endedByServer(socket: TLSSocket): Promise<boolean> {
  const end = await outcome(socket);
  return end === 'closed' || (end as NodeJS.ErrnoException).code === 'ECONNRESET';
}

async function connectAndTalk(client: MeshTls, port: number): Promise<TLSSocket> {
  const socket = await fx.connect(client, port, { spiffeId: ORDERS });
  expect(await roundTrip(socket, 'ping')).toBe('ping');
  return socket;
}

describe('inbound: a revoked caller', () => {
  it('has its open connection closed, then is refused on a resumed handshake (reason revoked), and is re-admitted once removed', async () => {
    const revoked = new Set<string>();
    const server = await meshTls(serverId, revoked);
    const client = await meshTls(clientId);
    const srv = await fx.server(server);
    const resumed = resumedAtServer(srv);

    const open = await connectAndTalk(client, srv.port);
    const key = client.sessionKey({ host: '127.0.0.1', port: srv.port }, { spiffeId: ORDERS });
    await eventually(() => client.sessions.get(key) !== undefined, 'the caller to cache its session');

    revoked.add(FRONTEND);
    const closed = endedByServer(open);
    expect(server.closeRevokedPeers()).toEqual([{ spiffeId: FRONTEND, inbound: 1, outbound: 0 }]);
    expect(await closed).toBe(true);

    // The caller offers its cached session; the server resumes it, and still refuses the caller.
    const again = await fx.connect(client, srv.port, { spiffeId: ORDERS });
    expect(await endedByServer(again)).toBe(true);
    expect(resumed).toEqual([false, true]);
    expect(srv.verdicts).toEqual([FRONTEND, 'TLS_PEER_REVOKED']);
    let refusal: unknown;
    try {
      server.verifyClient(srv.accepted[1]!);
    } catch (err) {
      refusal = err;
    }
    expect((refusal as Error).message).toBe(`the client ${FRONTEND} is revoked (revocation list, docs/revocation.md)`);
    expect(handshakeFailureReason(refusal)).toBe('revoked');

    // A full handshake is refused the same way.
    client.sessions.clear();
    const full = await fx.connect(client, srv.port, { spiffeId: ORDERS });
    expect(await endedByServer(full)).toBe(true);
    expect(resumed.at(-1)).toBe(false);
    expect(srv.verdicts.at(-1)).toBe('TLS_PEER_REVOKED');

    revoked.delete(FRONTEND);
    expect(server.closeRevokedPeers()).toEqual([]);
    await connectAndTalk(client, srv.port);
    expect(srv.verdicts.at(-1)).toBe(FRONTEND);
  });

  it('closes nothing of peers that are not revoked', async () => {
    const revoked = new Set<string>(['spiffe://cluster.local/ns/x/sa/other']);
    const server = await meshTls(serverId, revoked);
    const client = await meshTls(clientId);
    const srv = await fx.server(server);
    const open = await connectAndTalk(client, srv.port);
    expect(server.closeRevokedPeers()).toEqual([]);
    expect(await roundTrip(open, 'still here')).toBe('still here');
  });
});

describe('outbound: a revoked server', () => {
  it('is refused on a resumed session offered before the list was swept (TLS_PEER_REVOKED), and the session is dropped', async () => {
    const revoked = new Set<string>();
    const server = await meshTls(serverId);
    const client = await meshTls(clientId, revoked);
    const srv = await fx.server(server);
    await connectAndTalk(client, srv.port);
    const key = client.sessionKey({ host: '127.0.0.1', port: srv.port }, { spiffeId: ORDERS });
    await eventually(() => client.sessions.get(key) !== undefined, 'the session to be cached');

    revoked.add(ORDERS);
    const err = await fx.connect(client, srv.port, { spiffeId: ORDERS }).then(() => undefined, (e: unknown) => e);
    expect((err as { code?: string }).code).toBe('TLS_PEER_REVOKED');
    expect((err as Error).message).toBe(`the server ${ORDERS} is revoked (revocation list, docs/revocation.md)`);
    expect(handshakeFailureReason(err)).toBe('revoked');
    expect(client.sessions.get(key)).toBeUndefined();
  });

  it('has its open connections closed and cached sessions dropped by closeRevokedPeers; a full handshake is refused; removal re-admits', async () => {
    const revoked = new Set<string>();
    const server = await meshTls(serverId);
    const client = await meshTls(clientId, revoked);
    const srv = await fx.server(server);
    const first = await connectAndTalk(client, srv.port);
    const second = await connectAndTalk(client, srv.port);
    const key = client.sessionKey({ host: '127.0.0.1', port: srv.port }, { spiffeId: ORDERS });
    await eventually(() => client.sessions.size > 0, 'a session to be cached');

    revoked.add(ORDERS);
    const closedFirst = outcome(first);
    const closedSecond = outcome(second);
    expect(client.closeRevokedPeers()).toEqual([{ spiffeId: ORDERS, inbound: 0, outbound: 2 }]);
    expect(await closedFirst).toBe('closed');
    expect(await closedSecond).toBe('closed');
    expect(client.sessions.get(key)).toBeUndefined();

    const err = await fx.connect(client, srv.port, { spiffeId: ORDERS }).then(() => undefined, (e: unknown) => e);
    expect((err as { code?: string }).code).toBe('TLS_PEER_REVOKED');

    revoked.delete(ORDERS);
    await connectAndTalk(client, srv.port);
  });
});

describe('without a revocation list', () => {
  it('closeRevokedPeers does nothing and keeps no bookkeeping', async () => {
    const server = await meshTls(serverId);
    const client = await meshTls(clientId);
    const srv = await fx.server(server);
    const open = await connectAndTalk(client, srv.port);
    expect(server.closeRevokedPeers()).toEqual([]);
    expect(client.closeRevokedPeers()).toEqual([]);
    expect(await roundTrip(open, 'on')).toBe('on');
  });
});

describe('HTTP/2 over a revoked peer\'s connection', () => {
  it('an open HTTP/2 session of a revoked caller ends when the server closes its connection', async () => {
    const revoked = new Set<string>();
    const server = await meshTls(serverId, revoked);
    const client = await meshTls(clientId);
    const h2 = http2.createSecureServer({ ...server.serverOptions({ ALPNProtocols: ['h2'] }) }, (_req, res) => res.end('ok'));
    server.attachServer(h2);
    h2.on('secureConnection', (s: TLSSocket) => {
      try {
        server.verifyClient(s);
      } catch {
        // The fail-closed gate destroys it.
      }
    });
    await new Promise<void>((resolve) => h2.listen(0, '127.0.0.1', resolve));
    const port = (h2.address() as { port: number }).port;
    const session = http2.connect(`https://127.0.0.1:${port}`, { createConnection: () => client.connect({ host: '127.0.0.1', port }, { spiffeId: ORDERS }, { ALPNProtocols: ['h2'] }) });
    session.on('error', () => {});
    fx.defer(async () => {
      session.destroy();
      await new Promise<void>((resolve) => h2.close(() => resolve()));
    });
    const body = await new Promise<string>((resolve, reject) => {
      const req = session.request({ ':path': '/' });
      let data = '';
      req.setEncoding('utf8');
      req.on('data', (d: string) => (data += d));
      req.on('end', () => resolve(data));
      req.on('error', reject);
      req.end();
    });
    expect(body).toBe('ok');

    revoked.add(FRONTEND);
    const ended = new Promise<void>((resolve) => session.once('close', () => resolve()));
    expect(server.closeRevokedPeers()).toEqual([{ spiffeId: FRONTEND, inbound: 1, outbound: 0 }]);
    await ended;
    expect(session.destroyed).toBe(true);
  });
});
