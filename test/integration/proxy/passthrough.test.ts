import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ConnectionRegistry } from '../../../src/data-plane/proxy/connection-registry.ts';
import { passThrough } from '../../../src/data-plane/proxy/outbound/passthrough.ts';

/**
 * The passthrough leg on its own, on loopback (the e2e suite covers it behind real iptables,
 * test/e2e/outbound-passthrough.test.ts): bytes both ways untouched, half-close kept, both legs
 * in /connections with what they carry, and a destination that refuses is counted.
 */
const servers: net.Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

async function listen(handler: (s: net.Socket) => void, allowHalfOpen = false): Promise<number> {
  const server = net.createServer({ allowHalfOpen }, handler);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as net.AddressInfo).port;
}

/** An accepted "app" socket, as the outbound listener gets it, and the app's end of it. */
async function appConnection(): Promise<{ accepted: net.Socket; app: net.Socket }> {
  let accepted!: net.Socket;
  const got = new Promise<void>((r) => {
    void listen((s) => {
      accepted = s;
      r();
    }).then((port) => {
      app = net.connect(port, '127.0.0.1');
    });
  });
  let app!: net.Socket;
  await got;
  return { accepted, app };
}

describe('passThrough', () => {
  it('splices to the destination untouched, keeps half-close, and lists both legs with protocol, destination and SNI', async () => {
    // The destination answers after the client half-closes (a protocol that sends its last request, then reads).
    const dstPort = await listen((s) => {
      const chunks: Buffer[] = [];
      s.on('data', (d) => chunks.push(d));
      s.on('end', () => s.end(Buffer.concat([Buffer.from('got:'), ...chunks])));
    }, true);
    const registry = new ConnectionRegistry();
    const { accepted, app } = await appConnection();
    const conn = registry.track('outbound', 'accepted', accepted);
    passThrough(accepted, conn, { address: '127.0.0.1', port: dstPort, family: 4 }, 'tls', 'api.example.org', { registry, connectMs: 2_000 });
    const answer = new Promise<string>((resolve) => {
      let text = '';
      app.on('data', (d) => (text += d.toString('latin1')));
      app.on('end', () => resolve(text));
    });
    app.write(Buffer.from([0x16, 0x03, 0x01, 0xff]));
    // The upstream leg is tracked once it connects.
    while (registry.size < 2) await new Promise((r) => setTimeout(r, 5));
    const listed = registry.list();
    expect(listed.map((c) => c.passthrough)).toEqual([
      { protocol: 'tls', destination: `127.0.0.1:${dstPort}`, sni: 'api.example.org' },
      { protocol: 'tls', destination: `127.0.0.1:${dstPort}`, sni: 'api.example.org' },
    ]);
    expect(listed.map((c) => c.role).sort()).toEqual(['accepted', 'originated']);
    app.end();
    expect(await answer).toBe('got:\u0016\u0003\u0001\u00ff');
  });

  it('a destination that refuses: the app connection is closed and the failure counted', async () => {
    const closedPort = await listen(() => undefined);
    await new Promise((r) => servers.pop()!.close(r));
    const refused: string[] = [];
    const registry = new ConnectionRegistry();
    const { accepted, app } = await appConnection();
    const conn = registry.track('outbound', 'accepted', accepted);
    const closed = new Promise<void>((r) => app.on('close', () => r()));
    app.on('error', () => undefined);
    passThrough(accepted, conn, { address: '127.0.0.1', port: closedPort, family: 4 }, 'opaque', null, { registry, connectMs: 2_000, observer: { refused: (_d, code) => refused.push(code) } });
    await closed;
    expect(refused).toEqual(['MESHLET_UPSTREAM_CONNECT_FAILED']);
  });
});
