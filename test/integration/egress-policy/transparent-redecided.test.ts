import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OutboundProxy } from '../../../src/data-plane/proxy/outbound/outbound-proxy.ts';
import { DecidedConnections } from '../../../src/data-plane/proxy/tcp/decided-connections.ts';
import { resolveProxySettings } from '../../../src/data-plane/proxy/config.ts';
import type { CompiledClient, ClientDecision } from '../../../src/data-plane/policy/client-policy.ts';
import type { Resolution } from '../../../src/data-plane/discovery/resolution.ts';
import type { OriginalDestination } from '../../../src/data-plane/proxy/original-dst/original-dst.ts';
import { frontendClient } from '../../unit/policy/frontend-client.ts';
import { IDS, meshTlsFor } from '../proxy/support/mesh-fixture.ts';
import { until } from './fixture.ts';
import { openEcho, startEchoApp, startTcpMesh, type EchoApp, type TcpMesh } from '../proxy-tcp/support.ts';
import { recordingClientPolicy } from './recording-client-policy.ts';

/**
 * The app's transparently intercepted opaque TCP, allowed by the client policy when it opened,
 * decided again with the same facts when the policy changes (what the sidecar does on every
 * applied reload: DecidedConnections.reconsider()). Real sockets and mTLS, a real
 * OpaqueTcpProxy with the orders SVID in front of an echo app; the stand-ins are those of
 * transparent-clients.test.ts: the original destination (no iptables outside the e2e suite)
 * and discovery's answer.
 */
let mesh: TcpMesh;
let plainApp: EchoApp;
let outbound: OutboundProxy;
let port: number;
let rules: CompiledClient;
let dst: OriginalDestination;
let answer: Resolution;
const decided = new DecidedConnections();
const decisions: ClientDecision[] = [];

const both = () =>
  frontendClient(`        - { name: orders-db, service: orders-db, namespace: shop }
        - { name: plain, cidr: 127.0.0.1/32, ports: [${plainApp.port}] }
`);

beforeAll(async () => {
  mesh = await startTcpMesh();
  plainApp = await startEchoApp();
  rules = both();
  outbound = new OutboundProxy({
    tls: meshTlsFor(mesh.pki.svids.frontend),
    destinations: { mesh: [] },
    listenPort: 0,
    settings: resolveProxySettings({ timeouts: { protocolDetectMs: 200 } }),
    transparent: { passthrough: 'allow', discovery: { resolve: () => answer }, originalDestination: () => dst },
    clientPolicy: recordingClientPolicy(() => rules, decisions),
    decided,
  });
  await outbound.start();
  port = outbound.boundPort();
});
afterAll(async () => {
  await outbound?.drain();
  await mesh?.close();
  plainApp?.server.close();
});

describe('an open opaque connection under a changed client policy', () => {
  it('to a meshed Service: kept while an entry still allows it, closed when none does (the denial counted)', async () => {
    dst = { address: '127.0.0.1', port: mesh.inboundPort, family: 4 };
    answer = { kind: 'meshed', identities: [IDS.orders], protocol: 'tcp', endpoints: [], endpointsTruncated: false, service: 'orders-db.shop', reason: '' };
    const c = await openEcho(port);
    expect(await c.echo('meshed')).toBe('meshed');
    expect(decided.size).toBe(1);

    rules = both();
    const counted = decisions.length;
    expect(decided.reconsider()).toEqual({ inbound: 0, outbound: 0 });
    expect(decisions.length).toBe(counted); // still allowed: not a new decision, not counted
    expect(await c.echo('kept')).toBe('kept');

    rules = frontendClient(`        - { name: plain, cidr: 127.0.0.1/32, ports: [${plainApp.port}] }\n`);
    expect(decided.reconsider()).toEqual({ inbound: 0, outbound: 1 });
    await c.closed;
    expect(decisions.at(-1)).toMatchObject({ decision: 'deny', client: 'frontend', code: 'port-not-allowed' }); // the cidr entry names the address, on another port
    expect(decided.size).toBe(0);
  });

  it('passed through to an address a cidr entry allows: closed when the entry goes', async () => {
    rules = both();
    dst = { address: '127.0.0.1', port: plainApp.port, family: 4 };
    answer = { kind: 'external', externalName: '', reason: 'outside' };
    const c = await openEcho(port);
    expect(await c.echo('plain')).toBe('plain');
    expect(decided.reconsider()).toEqual({ inbound: 0, outbound: 0 });
    rules = frontendClient('        - { name: orders-db, service: orders-db, namespace: shop }\n');
    expect(decided.reconsider()).toEqual({ inbound: 0, outbound: 1 });
    await c.closed;
  });

  it('a connection that closed on its own is forgotten', async () => {
    rules = both();
    const c = await openEcho(port);
    expect(await c.echo('bye')).toBe('bye');
    expect(decided.size).toBe(1);
    c.end();
    await c.closed;
    // The sidecar's side of the connection closes right after: polled, not timed.
    await until(() => decided.size === 0);
  });
});
