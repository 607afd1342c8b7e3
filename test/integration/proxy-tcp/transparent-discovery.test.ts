import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OutboundProxy } from '../../../src/data-plane/proxy/outbound/outbound-proxy.ts';
import { ConnectionRegistry } from '../../../src/data-plane/proxy/connection-registry.ts';
import { resolveProxySettings } from '../../../src/data-plane/proxy/config.ts';
import type { Resolution } from '../../../src/data-plane/discovery/resolution.ts';
import type { OriginalDestination } from '../../../src/data-plane/proxy/original-dst/original-dst.ts';
import { IDS, meshTlsFor } from '../proxy/support/mesh-fixture.ts';
import { converse, startEchoApp, startTcpMesh, type EchoApp, type TcpMesh } from './support.ts';

/**
 * Issue 14 item 3, the sidecar's side: the app's own TLS and non-HTTP TCP, transparently
 * redirected, go where discovery says — meshed: inside mTLS to the destination, whose STRICT
 * sidecar authorizes the connection (here a real OpaqueTcpProxy with the orders SVID, in front
 * of an echo app); unmeshed: through in the clear; unknown: refused. Real sockets and mTLS;
 * two stand-ins, said here: the original destination (no iptables REDIRECT outside the e2e
 * suite — the seam the proxy offers for it) and discovery's answer (the client and its cache
 * are tested against the real identity service in test/integration/discovery/).
 */
let mesh: TcpMesh;
let plainApp: EchoApp;
let outbound: OutboundProxy;
let port: number;
const refused: string[] = [];
/** The peer of every connection the outbound proxy originated, as its registry heard of it. */
const originatedPeers: (string | null)[] = [];
/** What the fake original destination and discovery say, per test. */
let dst: OriginalDestination;
let answer: Resolution;

beforeAll(async () => {
  mesh = await startTcpMesh();
  plainApp = await startEchoApp();
  outbound = new OutboundProxy({
    tls: meshTlsFor(mesh.pki.svids.frontend),
    destinations: { mesh: [] },
    listenPort: 0,
    settings: resolveProxySettings({ timeouts: { protocolDetectMs: 200 } }),
    transparent: {
      passthrough: 'allow',
      discovery: { resolve: () => answer },
      originalDestination: () => dst,
    },
    tcpObserver: { refused: (_d, code) => refused.push(code) },
    registry: new ConnectionRegistry((c) => {
      if (c.role === 'originated') originatedPeers.push(c.peerIdentity);
    }),
  });
  await outbound.start();
  port = outbound.boundPort();
});
afterAll(async () => {
  await outbound?.drain();
  await mesh?.close();
  plainApp?.server.close();
});

const payload = Buffer.from([0x00, 0x01, 0xfe, 0xff, 0x42]);
const meshed = (identities: string[]): Resolution => ({ kind: 'meshed', identities, protocol: 'tcp', endpoints: [], endpointsTruncated: false, service: 'orders-db.shop', reason: '' });

describe('transparent TCP with discovery', () => {
  it('meshed: the bytes go inside mTLS to the destination, which authorizes frontend and echoes them', async () => {
    dst = { address: '127.0.0.1', port: mesh.inboundPort, family: 4 };
    answer = meshed([IDS.orders]);
    const before = mesh.app.accepted;
    const r = await converse(port, payload);
    expect(r.received.equals(payload)).toBe(true);
    expect(mesh.app.accepted).toBe(before + 1);
    expect(mesh.authorizer.seen.at(-1)).toMatchObject({ peer: IDS.frontend, port: mesh.app.port });
  });

  it('meshed, but the server is not the identity discovery names: closed before a byte moves, counted', async () => {
    dst = { address: '127.0.0.1', port: mesh.inboundPort, family: 4 };
    answer = meshed(['spiffe://cluster.local/ns/shop/sa/someone-else']);
    const before = mesh.app.accepted;
    const r = await converse(port, payload);
    expect(r.received.length).toBe(0);
    expect(mesh.app.accepted).toBe(before);
    expect(refused.at(-1)).toMatch(/^MESHLET_UPSTREAM_(IDENTITY_REJECTED|TLS_FAILED)$/);
  });

  it('unmeshed: passed through in the clear to the original destination', async () => {
    dst = { address: '127.0.0.1', port: plainApp.port, family: 4 };
    answer = { kind: 'unmeshed', protocol: 'tcp', endpoints: [], endpointsTruncated: false, service: 'legacy.shop', reason: '' };
    const before = originatedPeers.length;
    const r = await converse(port, payload);
    expect(r.received.equals(payload)).toBe(true);
    // The leg to it is labelled as what discovery said (/connections, the `peer` metric label).
    expect(originatedPeers.slice(before)).toEqual(['unmeshed']);
  });

  it('never plaintext to a meshed destination: the same plain echo app, said to be meshed, gets no byte', async () => {
    dst = { address: '127.0.0.1', port: plainApp.port, family: 4 };
    answer = meshed([IDS.orders]);
    const before = plainApp.accepted;
    const r = await converse(port, payload);
    expect(r.received.length).toBe(0);
    // It was dialled (for the mTLS handshake it cannot answer), but no app byte reached it as data:
    // the handshake fails and the caller is closed.
    expect(plainApp.accepted).toBe(before + 1);
    expect(refused.at(-1)).toMatch(/^MESHLET_UPSTREAM_TLS_(FAILED|TIMEOUT)$/);
  });

  it('unknown in the cluster (or discovery down): refused, MESHLET_UNKNOWN_DESTINATION', async () => {
    dst = { address: '127.0.0.1', port: plainApp.port, family: 4 };
    answer = { kind: 'unavailable', reason: 'unreachable', detail: 'down', inCluster: true };
    const r = await converse(port, payload);
    expect(r.received.length).toBe(0);
    expect(refused.at(-1)).toBe('MESHLET_UNKNOWN_DESTINATION');
  });
});

describe('server-first destinations skip the detection wait', () => {
  // A proxy whose detection would wait a minute: a server-first protocol only works if it is not asked to.
  let slow: OutboundProxy;
  let slowPort: number;
  let greeter: import('node:net').Server;
  let greeterPort: number;
  let declared: Resolution;
  beforeAll(async () => {
    const net = await import('node:net');
    greeter = net.createServer((s) => s.end('220 ready\r\n'));
    await new Promise<void>((r) => greeter.listen(0, '127.0.0.1', r));
    greeterPort = (greeter.address() as import('node:net').AddressInfo).port;
    slow = new OutboundProxy({
      tls: meshTlsFor(mesh.pki.svids.frontend),
      destinations: { mesh: [] },
      listenPort: 0,
      settings: resolveProxySettings({ timeouts: { protocolDetectMs: 60_000 } }),
      transparent: { passthrough: 'allow', serverFirstPorts: new Set([1]), discovery: { resolve: () => declared }, originalDestination: () => ({ address: '127.0.0.1', port: greeterPort, family: 4 }) },
    });
    await slow.start();
    slowPort = slow.boundPort();
  });
  afterAll(async () => {
    await slow?.drain();
    greeter?.close();
  });

  /** A client that says nothing and reads what the server says. */
  async function greeting(): Promise<string> {
    const net = await import('node:net');
    return new Promise((resolve, reject) => {
      const s = net.connect(slowPort, '127.0.0.1');
      let text = '';
      s.on('data', (d) => (text += d.toString('latin1')));
      s.on('close', () => resolve(text));
      s.on('error', reject);
    });
  }

  it('the Service declares the port server-first (appProtocol / port name): the greeting comes at once', async () => {
    declared = { kind: 'unmeshed', protocol: 'server-first', endpoints: [], endpointsTruncated: false, service: 'smtp.shop', reason: '' };
    expect(await greeting()).toBe('220 ready\r\n');
  });

  it('the Service declares plain TCP: the same', async () => {
    declared = { kind: 'unmeshed', protocol: 'tcp', endpoints: [], endpointsTruncated: false, service: 'legacy-db.shop', reason: '' };
    expect(await greeting()).toBe('220 ready\r\n');
  });
});

describe('egress rules on passthrough (no discovery)', () => {
  let ruled: OutboundProxy;
  let ruledPort: number;
  let to: OriginalDestination;
  const denied: string[] = [];
  beforeAll(async () => {
    const { EgressRules } = await import('../../../src/data-plane/proxy/outbound/egress-rules.ts');
    ruled = new OutboundProxy({
      tls: meshTlsFor(mesh.pki.svids.frontend),
      destinations: { mesh: [] },
      listenPort: 0,
      settings: resolveProxySettings({ timeouts: { protocolDetectMs: 200 } }),
      transparent: { passthrough: 'allow', egress: new EgressRules('allow', [], [{ cidrs: ['127.0.0.1/32'], ports: [plainApp.port] }]), originalDestination: () => to },
      tcpObserver: { refused: (_d, code) => denied.push(code) },
    });
    await ruled.start();
    ruledPort = ruled.boundPort();
  });
  afterAll(async () => {
    await ruled?.drain();
  });

  it('a destination a deny rule names is closed and counted; another one passes', async () => {
    to = { address: '127.0.0.1', port: plainApp.port, family: 4 };
    expect((await converse(ruledPort, payload)).received.length).toBe(0);
    expect(denied.at(-1)).toBe('MESHLET_PASSTHROUGH_DENIED');
    to = { address: '127.0.0.1', port: mesh.app.port, family: 4 };
    expect((await converse(ruledPort, payload)).received.equals(payload)).toBe(true);
  });
});
