import { connect as tlsConnect } from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { handshakeFailureReason } from '../../../src/data-plane/tls/mesh-tls.ts';
import { eventually, Fixture, identity, outcome, roundTrip, trustDomain, type TrustDomain } from './mesh-fixture.ts';

describe('mesh mTLS handshake', () => {
  let td: TrustDomain;
  const fx = new Fixture();
  beforeAll(async () => {
    td = await trustDomain('cluster.local');
  });
  afterEach(() => fx.close());

  it('completes mutually over TLS 1.3, each side seeing the other\'s SPIFFE ID (through an intermediate CA)', async () => {
    const server = await fx.meshTls(await identity(td, '/ns/shop/sa/orders'));
    const client = await fx.meshTls(await identity(td, '/ns/shop/sa/frontend'));
    const srv = await fx.server(server.tls);

    const socket = await fx.connect(client.tls, srv.port, { spiffeId: 'spiffe://cluster.local/ns/shop/sa/orders' });
    expect(await roundTrip(socket, 'ping')).toBe('ping');

    expect(socket.getProtocol()).toBe('TLSv1.3');
    expect(client.tls.verifyServer(socket).spiffeId.id).toBe('spiffe://cluster.local/ns/shop/sa/orders');
    // The server saw the client's chain (leaf + intermediate) and verified it to the root.
    // Node 24 hides a client's intermediates from tls.Server listeners (nodejs/node#65579);
    // this passes only because attachServer reads the chain before Node's handler does.
    expect(srv.verdicts).toEqual(['spiffe://cluster.local/ns/shop/sa/frontend']);
    expect(srv.accepted[0]!.getProtocol()).toBe('TLSv1.3');
    expect(client.tls.localId).toBe('spiffe://cluster.local/ns/shop/sa/frontend');
  });

  it('negotiates the ALPN protocol the caller asks for', async () => {
    const server = await fx.meshTls(await identity(td, '/ns/shop/sa/orders'));
    const client = await fx.meshTls(await identity(td, '/ns/shop/sa/frontend'));
    const srv = await fx.server(server.tls, { ALPNProtocols: ['h2', 'http/1.1'] });
    const socket = client.tls.connect({ host: '127.0.0.1', port: srv.port }, {}, { ALPNProtocols: ['http/1.1'] });
    fx.defer(() => void socket.destroy());
    await new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    expect(socket.alpnProtocol).toBe('http/1.1');
  });

  it('refuses a TLS 1.2-only client (protocol_version)', async () => {
    const server = await fx.meshTls(await identity(td, '/ns/shop/sa/orders'));
    const client = await identity(td, '/ns/shop/sa/frontend');
    const srv = await fx.server(server.tls);

    const socket = tlsConnect({
      host: '127.0.0.1',
      port: srv.port,
      maxVersion: 'TLSv1.2',
      cert: client.svid.certChainPem,
      key: client.svid.privateKeyPem,
      rejectUnauthorized: false,
    });
    fx.defer(() => void socket.destroy());
    const result = await outcome(socket);
    expect(result).toBeInstanceOf(Error);
    expect(handshakeFailureReason(result)).toBe('protocol_version');
    await eventually(() => srv.clientErrors.length > 0, 'the server to report the failed handshake');
    expect(handshakeFailureReason(srv.clientErrors[0])).toBe('protocol_version');
    expect(srv.accepted).toHaveLength(0);
  });

  it('refuses a client that presents no certificate (no_client_cert)', async () => {
    const server = await fx.meshTls(await identity(td, '/ns/shop/sa/orders'));
    const srv = await fx.server(server.tls);

    const socket = tlsConnect({ host: '127.0.0.1', port: srv.port, minVersion: 'TLSv1.3', ca: td.root.bundlePem, checkServerIdentity: () => undefined });
    fx.defer(() => void socket.destroy());
    socket.on('error', () => {});
    await eventually(() => srv.verdicts.length > 0, 'the server to judge the client');
    expect(srv.verdicts).toEqual(['TLS_PEER_NO_CERTIFICATE']);
    // The fail-closed gate destroyed the connection before the app could use it.
    await eventually(() => srv.accepted[0]!.destroyed, 'the refused connection to be closed');
    let threw: unknown;
    try {
      server.tls.verifyClient(srv.accepted[0]!);
    } catch (err) {
      threw = err;
    }
    expect(threw).toMatchObject({ name: 'TlsPeerError', code: 'TLS_PEER_NO_CERTIFICATE' });
    expect(handshakeFailureReason(threw)).toBe('no_client_cert');
    await eventually(() => socket.destroyed, 'the client to see its connection closed');
  });

  it('refuses a server whose SPIFFE ID is not the expected one (wrong_identity)', async () => {
    const server = await fx.meshTls(await identity(td, '/ns/shop/sa/payments'));
    const client = await fx.meshTls(await identity(td, '/ns/shop/sa/frontend'));
    const srv = await fx.server(server.tls);

    const err = await fx.connect(client.tls, srv.port, { spiffeId: 'spiffe://cluster.local/ns/shop/sa/orders' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ name: 'TlsPeerError', code: 'TLS_PEER_WRONG_IDENTITY' });
    expect((err as Error).message).toContain('spiffe://cluster.local/ns/shop/sa/payments');
    expect(handshakeFailureReason(err)).toBe('wrong_identity');
  });

  it('accepts any server of the expected trust domain, and refuses one outside it', async () => {
    const other = await trustDomain('partner.example');
    const server = await fx.meshTls(await identity(td, '/ns/shop/sa/payments', { alsoTrust: [other] }));
    const client = await fx.meshTls(await identity(td, '/ns/shop/sa/frontend', { alsoTrust: [other] }));
    const srv = await fx.server(server.tls);

    const ok = await fx.connect(client.tls, srv.port, { trustDomains: ['cluster.local'] });
    expect(client.tls.verifyServer(ok).spiffeId.id).toBe('spiffe://cluster.local/ns/shop/sa/payments');
    // No expectation at all means: our own trust domain.
    await fx.connect(client.tls, srv.port, {});

    const err = await fx.connect(client.tls, srv.port, { trustDomains: ['partner.example'] }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'TLS_PEER_UNTRUSTED_DOMAIN' });
    expect(handshakeFailureReason(err)).toBe('wrong_identity');
  });

  it('rejects a malformed expectation before connecting', async () => {
    const client = await fx.meshTls(await identity(td, '/ns/shop/sa/frontend'));
    expect(() => client.tls.connectOptions({ spiffeId: 'https://cluster.local/x' })).toThrow(expect.objectContaining({ code: 'TLS_BAD_EXPECTED_PEER' }));
    expect(() => client.tls.connectOptions({ trustDomains: [] })).toThrow(expect.objectContaining({ code: 'TLS_BAD_EXPECTED_PEER' }));
    expect(() => client.tls.connectOptions({ trustDomains: ['Bad.Domain'] })).toThrow(expect.objectContaining({ code: 'TLS_BAD_EXPECTED_PEER' }));
  });
});
