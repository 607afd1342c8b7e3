import * as net from 'node:net';
import * as tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OutboundProxy } from '../../../src/data-plane/proxy/outbound/outbound-proxy.ts';
import { EgressRules } from '../../../src/data-plane/proxy/outbound/egress-rules.ts';
import { resolveProxySettings } from '../../../src/data-plane/proxy/config.ts';
import type { OriginalDestination } from '../../../src/data-plane/proxy/original-dst/original-dst.ts';
import { closeServer, listen, meshTlsFor } from '../proxy/support/mesh-fixture.ts';
import { startTcpMesh, type TcpMesh } from '../proxy-tcp/support.ts';

/**
 * Security regression (issue 16 review, the operator's egress rules): with
 * MESHLET_OUTBOUND_PASSTHROUGH=deny and MESHLET_EGRESS_ALLOW=localhost, an app's own TLS whose
 * SNI is "localhost" was allowed by the name and then passed through to whatever address the app
 * had dialled — so any app reached any address by writing an allowed SNI. Now an allow that
 * rests on the name alone dials the name. Real sockets: two listeners on one port, 127.0.0.1
 * (what "localhost" resolves to) and 127.0.0.2 (the address the app chose); the original
 * destination is given to the proxy as iptables would (no root needed here).
 */
let mesh: TcpMesh;
let outbound: OutboundProxy;
let port: number;
let dst: OriginalDestination;
const refused: string[] = [];

interface Listener {
  server: net.Server;
  accepted: number;
}
let named: Listener;
let chosen: Listener;
let office: Listener;
let sharedPort: number;

function counting(): Listener {
  const l: Listener = { server: net.createServer(), accepted: 0 };
  l.server.on('connection', (s) => {
    l.accepted++;
    s.on('error', () => s.destroy());
    s.destroy();
  });
  return l;
}

function listenAt(server: net.Server, p: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(p, host, () => resolve());
  });
}

beforeAll(async () => {
  mesh = await startTcpMesh();
  named = counting();
  sharedPort = await listen(named.server, '127.0.0.1');
  chosen = counting();
  await listenAt(chosen.server, sharedPort, '127.0.0.2');
  office = counting();
  await listenAt(office.server, sharedPort, '127.0.0.3');
  outbound = new OutboundProxy({
    tls: meshTlsFor(mesh.pki.svids.frontend),
    destinations: { mesh: [] },
    listenPort: 0,
    settings: resolveProxySettings({ timeouts: { protocolDetectMs: 200 } }),
    // No discovery: every TLS and TCP connection is egress, decided by these rules alone.
    transparent: { passthrough: 'deny', egress: new EgressRules('deny', [{ hosts: ['localhost'] }, { cidrs: ['127.0.0.3/32'] }]), originalDestination: () => dst },
    tcpObserver: { refused: (_d, code) => refused.push(code) },
  });
  await outbound.start();
  port = outbound.boundPort();
});
afterAll(async () => {
  await outbound?.drain();
  await mesh?.close();
  for (const l of [named, chosen, office]) if (l) await closeServer(l.server);
});

function clientHello(servername: string): Promise<void> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false });
    s.on('error', () => undefined);
    s.on('close', () => resolve());
    setTimeout(() => s.destroy(), 1_000).unref();
  });
}

describe('MESHLET_EGRESS_ALLOW host rule and a spoofed SNI', () => {
  it('an allowed SNI sent to an address the rules do not allow: the sidecar dials the name, never the address the app chose', async () => {
    dst = { address: '127.0.0.2', port: sharedPort, family: 4 };
    const before = { named: named.accepted, chosen: chosen.accepted };
    await clientHello('localhost');
    expect(chosen.accepted).toBe(before.chosen);
    expect(named.accepted).toBe(before.named + 1);
  });

  it('an address a CIDR rule allows is dialled as the app chose (the name is not needed)', async () => {
    dst = { address: '127.0.0.3', port: sharedPort, family: 4 };
    const before = { named: named.accepted, office: office.accepted };
    await clientHello('localhost');
    expect(office.accepted).toBe(before.office + 1);
    expect(named.accepted).toBe(before.named);
  });

  it('neither the name nor the address allowed: closed, MESHLET_PASSTHROUGH_DENIED, nothing dialled', async () => {
    dst = { address: '127.0.0.2', port: sharedPort, family: 4 };
    const before = { named: named.accepted, chosen: chosen.accepted };
    await clientHello('other.example');
    expect(refused.at(-1)).toBe('MESHLET_PASSTHROUGH_DENIED');
    expect([named.accepted, chosen.accepted]).toEqual([before.named, before.chosen]);
  });
});
