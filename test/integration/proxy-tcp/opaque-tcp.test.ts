import { randomBytes } from 'node:crypto';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OpaqueTcpProxy } from '../../../src/data-plane/proxy/tcp/opaque-inbound.ts';
import { resolveProxySettings } from '../../../src/data-plane/proxy/config.ts';
import { createMeshPki, IDS, meshTlsFor, waitFor, type MeshPki } from '../proxy/support/mesh-fixture.ts';
import { CallerListAuthorizer, converse, sha256, startEchoApp, startTcpMesh, type TcpMesh } from './support.ts';

describe('opaque TCP through two sidecars', () => {
  let pki: MeshPki;
  let mesh: TcpMesh;
  beforeAll(async () => {
    pki = await createMeshPki();
    mesh = await startTcpMesh({ pki });
  });
  afterAll(async () => {
    await mesh.close();
  });

  it('echoes an allowed caller\'s 8 MiB through mTLS, byte for byte, and passes the half-close on', async () => {
    const payload = randomBytes(8 * 1024 * 1024);
    const before = mesh.app.accepted;
    const got = await converse(mesh.outboundPort, payload);
    // The app saw the FIN only through the sidecars (it ends its side on 'end'): an orderly end here proves it travelled both hops.
    expect(got.how).toBe('end');
    expect(got.received.length).toBe(payload.length);
    expect(sha256(got.received)).toBe(sha256(payload));
    expect(mesh.app.accepted).toBe(before + 1);
    expect(mesh.authorizer.seen.at(-1)).toEqual({ peer: IDS.frontend, port: mesh.app.port });
  });

  it('lists both legs of a live connection with the verified peer, TLS 1.3 and byte counts', async () => {
    const socket = net.connect({ host: '127.0.0.1', port: mesh.outboundPort });
    try {
      socket.write('hello');
      await new Promise((r) => socket.once('data', r));
      const inboundLegs = mesh.inbound.registry.list();
      const accepted = inboundLegs.find((c) => c.role === 'accepted');
      expect(accepted).toMatchObject({ direction: 'inbound', peerIdentity: IDS.frontend, tlsVersion: 'TLSv1.3' });
      // The caller's 5 bytes in; their echo out (TLSSocket counts application bytes).
      expect(accepted!.bytesIn).toBe(5);
      expect(accepted!.bytesOut).toBeGreaterThanOrEqual(5);
      expect(inboundLegs.find((c) => c.role === 'originated')).toMatchObject({ direction: 'inbound', peerIdentity: IDS.frontend, remotePort: mesh.app.port, bytesOut: 5, bytesIn: 5 });
      const outLegs = mesh.outbound.registry.list();
      expect(outLegs.find((c) => c.role === 'originated')).toMatchObject({ direction: 'outbound', peerIdentity: IDS.orders, tlsVersion: 'TLSv1.3' });
    } finally {
      socket.destroy();
    }
    await waitFor(() => mesh.inbound.openSessions === 0 && mesh.outbound.openSessions === 0, 'sessions to end');
  });

  it('keeps the other direction flowing after the caller half-closes (server speaks last)', async () => {
    // A server that waits for the caller's FIN, then answers and closes.
    const got = await new Promise<string>((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port: mesh.outboundPort, allowHalfOpen: true });
      let text = '';
      s.setEncoding('utf8');
      s.on('data', (d: string) => (text += d));
      s.on('end', () => resolve(text));
      s.on('error', reject);
      s.end('last words');
    });
    expect(got).toBe('last words');
  });

  it('closes a denied caller\'s connection; the app never sees a connection', async () => {
    const denied = await startTcpMesh({ pki, caller: 'imposter' });
    try {
      const got = await converse(denied.outboundPort, Buffer.from('SELECT 1;'));
      expect(got.received.length).toBe(0);
      expect(denied.refused).toEqual([{ direction: 'inbound', code: 'MESHLET_DENIED' }]);
      expect(denied.authorizer.seen).toEqual([{ peer: IDS.imposter, port: denied.app.port }]);
      expect(denied.app.accepted).toBe(0);
    } finally {
      await denied.close();
    }
  });

  it('refuses a plaintext caller on a tcp port (STRICT): nothing reaches the app', async () => {
    const before = mesh.app.accepted;
    const got = await new Promise<string>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port: mesh.inboundPort });
      let text = '';
      s.on('data', (d: Buffer) => (text += d.toString('latin1')));
      s.on('error', () => {});
      s.on('close', () => resolve(text));
      s.write('PING plaintext\r\n');
    });
    // No application bytes echo back (at most a TLS alert record, which starts with 0x15).
    expect(got.includes('PING')).toBe(false);
    await waitFor(() => mesh.handshakeFailures.length > 0, 'the refused handshake to be counted');
    expect(mesh.app.accepted).toBe(before);
  });

  it('refuses a TLS caller without a client certificate', async () => {
    const before = mesh.app.accepted;
    const closed = await new Promise<string>((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port: mesh.inboundPort, rejectUnauthorized: false, minVersion: 'TLSv1.3' });
      let text = '';
      s.on('data', (d: Buffer) => (text += d.toString()));
      s.on('error', () => {});
      s.on('close', () => resolve(text));
      s.write('hello?');
    });
    expect(closed).toBe('');
    expect(mesh.app.accepted).toBe(before);
  });

  it('closes the app\'s connection when the peer sidecar is not the expected identity', async () => {
    const wrong = await startTcpMesh({ pki, expectedOrdersId: IDS.imposter });
    try {
      const got = await converse(wrong.outboundPort, Buffer.from('hi'));
      expect(got.received.length).toBe(0);
      expect(wrong.refused).toEqual([{ direction: 'outbound', code: 'MESHLET_UPSTREAM_IDENTITY_REJECTED' }]);
      expect(wrong.app.accepted).toBe(0);
    } finally {
      await wrong.close();
    }
  });

  it('closes the caller\'s connection when the app is down, counted as MESHLET_UPSTREAM_CONNECT_FAILED', async () => {
    const app = await startEchoApp();
    const deadPort = app.port;
    await new Promise((r) => app.server.close(r));
    const refused: string[] = [];
    const inbound = new OpaqueTcpProxy({
      tls: meshTlsFor(pki.svids.orders),
      authorizer: new CallerListAuthorizer([IDS.frontend]),
      ports: [{ listenPort: 0, appPort: deadPort }],
      listenHost: '127.0.0.1',
      observer: { refused: (_d, code) => refused.push(code) },
    });
    await inbound.start();
    try {
      const client = meshTlsFor(pki.svids.frontend);
      const text = await new Promise<string>((resolve) => {
        const s = client.connect({ host: '127.0.0.1', port: inbound.boundPorts()[0]!.listenPort }, { spiffeId: IDS.orders });
        let t = '';
        s.on('data', (d: Buffer) => (t += d.toString()));
        s.on('error', () => {});
        s.on('close', () => resolve(t));
        s.write('anyone?');
      });
      expect(text).toBe('');
      expect(refused).toEqual(['MESHLET_UPSTREAM_CONNECT_FAILED']);
    } finally {
      await inbound.drain();
    }
  });
});

describe('draining an opaque TCP proxy', () => {
  it('stops accepting, lets an open stream finish, and resolves with 0 cut', async () => {
    const mesh = await startTcpMesh();
    try {
      const s = net.connect({ host: '127.0.0.1', port: mesh.outboundPort, allowHalfOpen: true });
      s.on('error', () => {});
      s.write('one');
      await new Promise((r) => s.once('data', r));
      const drained = mesh.inbound.drain();
      // New callers are refused at once (the listener is closed).
      const refusedConnect = await new Promise<string>((resolve) => {
        const n = net.connect({ host: '127.0.0.1', port: mesh.inboundPort });
        n.on('error', (err: Error & { code?: string }) => resolve(err.code ?? 'error'));
        n.on('connect', () => resolve('connected'));
      });
      expect(refusedConnect).toBe('ECONNREFUSED');
      // The open stream still works until the caller ends it.
      s.write('two');
      const echoed = await new Promise<string>((resolve) => s.once('data', (d: Buffer) => resolve(d.toString())));
      expect(echoed).toBe('two');
      s.end();
      expect(await drained).toBe(0);
    } finally {
      await mesh.close();
    }
  });

  it('cuts a stream still open at the drain deadline and says how many', async () => {
    const mesh = await startTcpMesh({ settings: { timeouts: { drainMs: 200 } } });
    try {
      const s = net.connect({ host: '127.0.0.1', port: mesh.outboundPort });
      const closed = new Promise((r) => s.once('close', r));
      s.on('error', () => {});
      s.write('x');
      await new Promise((r) => s.once('data', r));
      expect(await mesh.inbound.drain()).toBe(1);
      await closed;
      expect(s.destroyed).toBe(true);
    } finally {
      await mesh.close();
    }
  });
});

describe('opaque TCP settings', () => {
  it('uses the shared proxy settings (invalid ones are refused before any listener exists)', () => {
    expect(() => resolveProxySettings({ timeouts: { drainMs: 0 } })).toThrow(/drainMs/);
  });
});
