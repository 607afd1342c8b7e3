import * as net from 'node:net';
import * as tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OutboundProxy } from '../../../src/data-plane/proxy/outbound/outbound-proxy.ts';
import { resolveProxySettings } from '../../../src/data-plane/proxy/config.ts';
import type { ClientDecision } from '../../../src/data-plane/policy/client-policy.ts';
import { frontendClient } from '../../unit/policy/frontend-client.ts';
import type { Resolution } from '../../../src/data-plane/discovery/resolution.ts';
import type { OriginalDestination } from '../../../src/data-plane/proxy/original-dst/original-dst.ts';
import { closeServer, IDS, listen, meshTlsFor } from '../proxy/support/mesh-fixture.ts';
import { startTcpMesh, type TcpMesh } from '../proxy-tcp/support.ts';
import { recordingClientPolicy } from './recording-client-policy.ts';

/**
 * Security regression (issue 16 review): the SNI of the app's own TLS is written by the app, so a
 * `host` entry that allows it must not let the app reach whatever address it dialled. Before the
 * fix an app allowed `host: localhost` reached ANY address by sending SNI "localhost" to it (the
 * sidecar decided on the name and dialled the original destination). Now an allow that rests on
 * the name alone dials the name; a meshed destination (dialled at the address discovery vouched
 * for) is decided without the SNI. Real sockets: two listeners on the same port, one on
 * 127.0.0.1 (what "localhost" resolves to) and one on 127.0.0.2 (the address the app "chose").
 */
let mesh: TcpMesh;
let outbound: OutboundProxy;
let port: number;
const refused: string[] = [];
const decisions: ClientDecision[] = [];
let dst: OriginalDestination;
let answer: Resolution;

interface Listener {
  server: net.Server;
  accepted: number;
}
let named: Listener;
let chosen: Listener;
let sharedPort: number;

function listenAt(server: net.Server, p: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(p, host, () => resolve());
  });
}

function counting(): Listener {
  const l: Listener = { server: net.createServer(), accepted: 0 };
  l.server.on('connection', (s) => {
    l.accepted++;
    s.on('error', () => s.destroy());
    s.destroy();
  });
  return l;
}

beforeAll(async () => {
  mesh = await startTcpMesh();
  named = counting();
  const samePort = await listen(named.server, '127.0.0.1');
  // Both on one port: which one accepted tells where the sidecar dialled.
  chosen = counting();
  await listenAt(chosen.server, samePort, '127.0.0.2');
  sharedPort = samePort;
  const rules = frontendClient('        - { name: local-api, host: localhost }\n        - { name: office, cidr: 127.0.0.3/32 }\n');
  outbound = new OutboundProxy({
    tls: meshTlsFor(mesh.pki.svids.frontend),
    destinations: { mesh: [] },
    listenPort: 0,
    settings: resolveProxySettings({ timeouts: { protocolDetectMs: 200 } }),
    transparent: { passthrough: 'allow', discovery: { resolve: () => answer }, originalDestination: () => dst },
    tcpObserver: { refused: (_d, code) => refused.push(code) },
    clientPolicy: recordingClientPolicy(() => rules, decisions),
  });
  await outbound.start();
  port = outbound.boundPort();
});
afterAll(async () => {
  await outbound?.drain();
  await mesh?.close();
  await closeServer(named.server);
  await closeServer(chosen.server);
});

/** A ClientHello with `servername` as SNI; resolves when the connection is over. */
function clientHello(servername: string): Promise<void> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false });
    s.on('error', () => undefined);
    s.on('close', () => resolve());
    setTimeout(() => s.destroy(), 1_000).unref();
  });
}

describe('an allowed SNI sent to an address the policy does not allow (SNI spoofing)', () => {
  it('outside the cluster: the sidecar dials the allowed name, never the address the app chose', async () => {
    answer = { kind: 'external', externalName: '', reason: 'outside' };
    dst = { address: '127.0.0.2', port: sharedPort, family: 4 };
    const before = { named: named.accepted, chosen: chosen.accepted };
    await clientHello('localhost');
    expect(decisions.at(-1)).toMatchObject({ decision: 'allow', route: 'local-api' });
    expect(chosen.accepted).toBe(before.chosen);
    expect(named.accepted).toBe(before.named + 1);
  });

  it('an unmeshed in-cluster destination: the same', async () => {
    answer = { kind: 'unmeshed', protocol: 'tls', endpoints: [], endpointsTruncated: false, service: 'legacy.web', reason: '' };
    dst = { address: '127.0.0.2', port: sharedPort, family: 4 };
    const before = { named: named.accepted, chosen: chosen.accepted };
    await clientHello('localhost');
    expect(chosen.accepted).toBe(before.chosen);
    expect(named.accepted).toBe(before.named + 1);
  });

  it('an address another entry allows (cidr) is still dialled as the app chose: the name is not needed', async () => {
    answer = { kind: 'external', externalName: '', reason: 'outside' };
    const office = counting();
    await listenAt(office.server, sharedPort, '127.0.0.3');
    try {
      dst = { address: '127.0.0.3', port: sharedPort, family: 4 };
      const before = named.accepted;
      await clientHello('localhost');
      expect(office.accepted).toBe(1);
      expect(named.accepted).toBe(before);
    } finally {
      await closeServer(office.server);
    }
  });

  it('a meshed destination: the SNI is no fact, so a host entry does not open it (closed, MESHLET_DENIED, not dialled)', async () => {
    answer = { kind: 'meshed', identities: [IDS.orders], protocol: 'tls', endpoints: [], endpointsTruncated: false, service: 'orders.shop', reason: '' };
    dst = { address: '127.0.0.1', port: mesh.inboundPort, family: 4 };
    const before = mesh.app.accepted;
    await clientHello('localhost');
    expect(refused.at(-1)).toBe('MESHLET_DENIED');
    expect(decisions.at(-1)).toMatchObject({ decision: 'deny', code: 'no-destination-matched', reason: `destination 127.0.0.1:${mesh.inboundPort} (${IDS.orders}) is not among client "frontend"'s destinations; default is deny` });
    expect(mesh.app.accepted).toBe(before);
  });
});
