import { X509Certificate } from 'node:crypto';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { IdentitySnapshot } from '../../../src/data-plane/identity/svid.ts';
import { handshakeFailureReason } from '../../../src/data-plane/tls/mesh-tls.ts';
import { eventually, Fixture, identity, outcome, roundTrip, trustDomain, type TrustDomain } from './mesh-fixture.ts';

function serialOf(snapshot: IdentitySnapshot): string {
  return new X509Certificate(snapshot.svid.certChainPem).serialNumber;
}

/**
 * Sends numbered messages on `socket` one after another until stopped, checking each echo.
 * `done` resolves with how many round trips completed, or rejects on the first lost or
 * garbled one: a connection dropped by rotation fails here.
 */
function keepTalking(socket: TLSSocket): { stop: () => void; done: Promise<number>; count: () => number } {
  let stopped = false;
  let n = 0;
  const done = (async () => {
    while (!stopped) {
      const msg = `msg-${n};`;
      const echoed = await roundTrip(socket, msg);
      if (echoed !== msg) throw new Error(`round trip ${n}: sent ${msg}, got ${echoed}`);
      n++;
    }
    return n;
  })();
  return { stop: () => void (stopped = true), done, count: () => n };
}

describe('rotation: new handshakes use the new SVID, open connections carry on', () => {
  let td: TrustDomain;
  const fx = new Fixture();
  beforeAll(async () => {
    td = await trustDomain('cluster.local');
  });
  afterEach(() => fx.close());

  it('server side: a new handshake presents the new certificate; the open connection keeps exchanging data', async () => {
    const first = await identity(td, '/ns/shop/sa/orders');
    const second = await identity(td, '/ns/shop/sa/orders');
    expect(serialOf(second)).not.toBe(serialOf(first));
    expect(second.svid.privateKeyPem).not.toBe(first.svid.privateKeyPem);

    const server = await fx.meshTls(first);
    const client = await fx.meshTls(await identity(td, '/ns/shop/sa/frontend'));
    const srv = await fx.server(server.tls);
    const rotations: string[] = [];
    server.tls.onRotate((s) => rotations.push(serialOf(s)));

    const old = await fx.connect(client.tls, srv.port);
    expect(old.getPeerCertificate().serialNumber).toBe(serialOf(first));
    const talk = keepTalking(old);
    await eventually(() => talk.count() >= 20, 'traffic before the rotation');

    server.source.rotate(second);
    expect(rotations).toEqual([serialOf(second)]);
    const countAtRotation = talk.count();

    const fresh = await fx.connect(client.tls, srv.port);
    expect(fresh.getPeerCertificate().serialNumber).toBe(serialOf(second));
    expect(await roundTrip(fresh, 'new')).toBe('new');

    await eventually(() => talk.count() >= countAtRotation + 20, 'traffic after the rotation on the old connection');
    talk.stop();
    expect(await talk.done).toBeGreaterThanOrEqual(countAtRotation + 20);
    // The old connection still has the certificate it was handshaked with.
    expect(old.getPeerCertificate().serialNumber).toBe(serialOf(first));
    expect(old.destroyed).toBe(false);

    // The new context is still TLS 1.3 only.
    const legacy = tlsConnect({ host: '127.0.0.1', port: srv.port, maxVersion: 'TLSv1.2', rejectUnauthorized: false });
    fx.defer(() => void legacy.destroy());
    expect(handshakeFailureReason(await outcome(legacy))).toBe('protocol_version');
  });

  it('client side: new outbound connections present the new client certificate', async () => {
    const first = await identity(td, '/ns/shop/sa/frontend');
    const second = await identity(td, '/ns/shop/sa/frontend');
    const server = await fx.meshTls(await identity(td, '/ns/shop/sa/orders'));
    const client = await fx.meshTls(first);
    const srv = await fx.server(server.tls);
    const contextBefore = client.tls.clientContext();

    const old = await fx.connect(client.tls, srv.port);
    const talk = keepTalking(old);
    await eventually(() => srv.accepted.length === 1 && talk.count() >= 10, 'traffic before the rotation');
    expect(srv.accepted[0]!.getPeerX509Certificate()?.serialNumber).toBe(serialOf(first));

    client.source.rotate(second);
    // One new context per rotation, not one per connection.
    expect(client.tls.clientContext()).not.toBe(contextBefore);
    const contextAfter = client.tls.clientContext();
    const countAtRotation = talk.count();

    await fx.connect(client.tls, srv.port);
    await fx.connect(client.tls, srv.port);
    await eventually(() => srv.accepted.length === 3, 'the server to accept the new connections');
    expect(srv.accepted[1]!.getPeerX509Certificate()?.serialNumber).toBe(serialOf(second));
    expect(srv.accepted[2]!.getPeerX509Certificate()?.serialNumber).toBe(serialOf(second));
    expect(client.tls.clientContext()).toBe(contextAfter);

    await eventually(() => talk.count() >= countAtRotation + 10, 'traffic after the rotation on the old connection');
    talk.stop();
    await talk.done;
    expect(srv.verdicts).toEqual(Array(3).fill('spiffe://cluster.local/ns/shop/sa/frontend'));
  });

  it('bundle rotation: a new root becomes trusted, a removed one stops being trusted', async () => {
    const nextRoot = await trustDomain('cluster.local');
    const serverSvid = await identity(td, '/ns/shop/sa/orders');
    const server = await fx.meshTls(serverSvid);
    const srv = await fx.server(server.tls);

    // A client whose SVID comes from the new root (and which trusts the server's old root).
    const migrated = await identity(nextRoot, '/ns/shop/sa/frontend');
    const migratedClient = await fx.meshTls({ ...migrated, bundles: new Map([['cluster.local', td.root.bundlePem + nextRoot.root.bundlePem]]) });
    const legacyClient = await fx.meshTls(await identity(td, '/ns/shop/sa/legacy'));

    await fx.connect(migratedClient.tls, srv.port).catch(() => {});
    await eventually(() => srv.verdicts.length === 1, 'the first verdict');
    expect(srv.verdicts[0]).toBe('SVID_UNKNOWN_AUTHORITY');

    // Both roots: the migration window.
    server.source.rotate({ svid: serverSvid.svid, bundles: new Map([['cluster.local', td.root.bundlePem + nextRoot.root.bundlePem]]) });
    await fx.connect(migratedClient.tls, srv.port);
    await fx.connect(legacyClient.tls, srv.port);
    await eventually(() => srv.verdicts.length === 3, 'verdicts in the migration window');
    expect(srv.verdicts.slice(1)).toEqual(['spiffe://cluster.local/ns/shop/sa/frontend', 'spiffe://cluster.local/ns/shop/sa/legacy']);

    // Old root retired: its SVIDs are refused at once (no verdict cached across rotations).
    server.source.rotate({ svid: serverSvid.svid, bundles: new Map([['cluster.local', nextRoot.root.bundlePem]]) });
    // The server's own SVID is from the old root, which the legacy client still trusts.
    await fx.connect(legacyClient.tls, srv.port).catch(() => {});
    await eventually(() => srv.verdicts.length === 4, 'the verdict after the old root was retired');
    expect(srv.verdicts[3]).toBe('SVID_UNKNOWN_AUTHORITY');
  });
});
