import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { detectTls } from '../../../src/data-plane/tls/detect.ts';
import { handshakeFailureReason, type MeshTls } from '../../../src/data-plane/tls/mesh-tls.ts';
import { eventually, Fixture, identity, roundTrip, trustDomain, type TrustDomain } from './mesh-fixture.ts';

/** A PERMISSIVE port: detect, then TLS (meshTls.acceptSocket) or plaintext; echoes either way. */
async function permissivePort(fx: Fixture, mesh: MeshTls, timeoutMs: number) {
  const detected: string[] = [];
  const peers: string[] = [];
  const sockets: Socket[] = [];
  const server: Server = createServer(async (raw) => {
    sockets.push(raw);
    raw.on('error', () => {});
    const kind = await detectTls(raw, timeoutMs);
    detected.push(kind);
    if (kind === 'plaintext') {
      raw.pipe(raw);
      return;
    }
    const socket = mesh.acceptSocket(raw);
    socket.on('error', () => {});
    socket.once('secure', () => {
      peers.push(mesh.verifyClient(socket).spiffeId.id);
      socket.pipe(socket);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fx.defer(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  return { port: address.port, detected, peers };
}

describe('detectTls (PERMISSIVE ports)', () => {
  let td: TrustDomain;
  const fx = new Fixture();
  beforeAll(async () => {
    td = await trustDomain('cluster.local');
  });
  afterEach(() => fx.close());

  it('says plaintext for an HTTP request and hands every byte on intact', async () => {
    const { tls } = await fx.meshTls(await identity(td, '/ns/shop/sa/orders'));
    const port = await permissivePort(fx, tls, 10_000);
    const client = await fx.plainConnect(port.port);
    const request = 'GET /orders?id=42 HTTP/1.1\r\nHost: orders\r\n\r\n';
    expect(await roundTrip(client, request)).toBe(request);
    expect(port.detected).toEqual(['plaintext']);
  });

  it('says tls for a ClientHello, and the handshake then completes on the same bytes', async () => {
    const server = await fx.meshTls(await identity(td, '/ns/shop/sa/orders'));
    const client = await fx.meshTls(await identity(td, '/ns/shop/sa/frontend'));
    const port = await permissivePort(fx, server.tls, 10_000);
    const socket = await fx.connect(client.tls, port.port, { spiffeId: 'spiffe://cluster.local/ns/shop/sa/orders' });
    expect(await roundTrip(socket, 'hello over mTLS')).toBe('hello over mTLS');
    expect(port.detected).toEqual(['tls']);
    expect(port.peers).toEqual(['spiffe://cluster.local/ns/shop/sa/frontend']);
  });

  it('keeps bytes that arrive one at a time in order', async () => {
    const { tls } = await fx.meshTls(await identity(td, '/ns/shop/sa/orders'));
    const port = await permissivePort(fx, tls, 10_000);
    const client = await fx.plainConnect(port.port);
    client.setNoDelay(true);
    let echoed = '';
    client.on('data', (chunk: Buffer) => (echoed += chunk.toString('latin1')));
    const preface = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';
    // Separate writes (separate segments, most of the time): detection must wait for a
    // second byte and give back the first one in its place.
    client.write(preface.slice(0, 1));
    await new Promise((resolve) => setTimeout(resolve, 20));
    client.write(preface.slice(1));
    await eventually(() => echoed.length >= preface.length, 'the preface to come back');
    expect(echoed).toBe(preface);
    expect(port.detected).toEqual(['plaintext']);
  });

  it('calls a silent client plaintext after the timeout (server-speaks-first protocols)', async () => {
    const { tls } = await fx.meshTls(await identity(td, '/ns/shop/sa/orders'));
    const port = await permissivePort(fx, tls, 50);
    const client = await fx.plainConnect(port.port);
    await eventually(() => port.detected.length > 0, 'detection to give up waiting');
    expect(port.detected).toEqual(['plaintext']);
    expect(await roundTrip(client, 'late words')).toBe('late words');
  });

  it('refuses a timeout that is not a positive number', async () => {
    const fake = { on() {}, once() {}, off() {} } as unknown as Socket;
    await expect(detectTls(fake, 0)).rejects.toMatchObject({ code: 'TLS_BAD_TIMEOUT' });
  });

  it('labels plaintext sent to a STRICT port plaintext_on_strict', async () => {
    const { tls } = await fx.meshTls(await identity(td, '/ns/shop/sa/orders'));
    const srv = await fx.server(tls);
    const client = await fx.plainConnect(srv.port);
    client.on('error', () => {});
    client.write('GET / HTTP/1.1\r\nHost: orders\r\n\r\n');
    await eventually(() => srv.clientErrors.length > 0, 'the server to refuse the plaintext');
    expect(handshakeFailureReason(srv.clientErrors[0])).toBe('plaintext_on_strict');
    expect(srv.accepted).toHaveLength(0);
  });
});
