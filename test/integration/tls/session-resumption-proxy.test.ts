import * as http from 'node:http';
import type { TLSSocket } from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { resolveProxySettings } from '../../../src/data-plane/proxy/config.ts';
import { InboundProxy } from '../../../src/data-plane/proxy/inbound/inbound-proxy.ts';
import { OutboundProxy } from '../../../src/data-plane/proxy/outbound/outbound-proxy.ts';
import type { AuthorizationDecision } from '../../../src/data-plane/proxy/request-authorizer.ts';
import type { ConnectionFacts } from '../../../src/data-plane/proxy/tcp/connection-authorizer.ts';
import { OpaqueTcpProxy } from '../../../src/data-plane/proxy/tcp/opaque-inbound.ts';
import { OpaqueTcpOutbound } from '../../../src/data-plane/proxy/tcp/opaque-outbound.ts';
import type { MeshTls } from '../../../src/data-plane/tls/mesh-tls.ts';
import { closeServer, listen, request, waitFor } from '../proxy/support/mesh-fixture.ts';
import { strictPathNormalizer } from '../proxy/support/stand-in-policy.ts';
import { converse, startEchoApp } from '../proxy-tcp/support.ts';
import { Fixture, identity, trustDomain, type TrustDomain } from './mesh-fixture.ts';

/**
 * Session resumption through the proxies themselves (real InboundProxy / OutboundProxy / opaque
 * TCP proxies, real MeshTls, SVIDs issued by an intermediate): the caller identity the inbound
 * side hands to the policy on a resumed connection is the caller's SPIFFE ID from the session's
 * client certificate, so decisions on resumed connections are the same as on full handshakes —
 * an allowed caller stays allowed, a denied caller stays denied.
 */
const ORDERS = 'spiffe://cluster.local/ns/shop/sa/orders';
const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend';
const IMPOSTER = 'spiffe://cluster.local/ns/shop/sa/imposter';
const ORDERS_HOST = 'orders.shop.svc.cluster.local';

/** Allows the listed callers, on any port and path; records who asked and what it answered. */
class CallerList {
  allowed: readonly string[];
  readonly decisions: { peer: string | null; decision: string }[] = [];
  constructor(allowed: readonly string[]) {
    this.allowed = allowed;
  }
  authorize(facts: { peer: string | null } | ConnectionFacts): AuthorizationDecision {
    const decision: AuthorizationDecision = facts.peer !== null && this.allowed.includes(facts.peer) ? { decision: 'allow', route: 'listed', reason: 'caller is listed' } : { decision: 'deny', route: 'listed', reason: 'caller is not listed' };
    this.decisions.push({ peer: facts.peer, decision: decision.decision });
    return decision;
  }
}

/**
 * Records, for each connection the inbound side verified, whether its TLS session was resumed and
 * who the caller was — by wrapping verifyClient, which the proxy asks for the caller's identity.
 */
function recordCallers(tls: MeshTls): () => { peer: string; resumed: boolean }[] {
  const bySocket = new Map<TLSSocket, { peer: string; resumed: boolean }>();
  const verify = tls.verifyClient.bind(tls);
  tls.verifyClient = (socket) => {
    const peer = verify(socket);
    if (!bySocket.has(socket)) bySocket.set(socket, { peer: peer.spiffeId.id, resumed: socket.isSessionReused() });
    return peer;
  };
  return () => [...bySocket.values()];
}

describe('session resumption through the proxies', () => {
  let td: TrustDomain;
  const fx = new Fixture();
  let ordersTls: MeshTls;
  let frontendTls: MeshTls;
  let imposterTls: MeshTls;
  beforeAll(async () => {
    td = await trustDomain('cluster.local');
  });
  afterEach(() => fx.close());

  async function identities(): Promise<void> {
    ordersTls = (await fx.meshTls(await identity(td, '/ns/shop/sa/orders'))).tls;
    frontendTls = (await fx.meshTls(await identity(td, '/ns/shop/sa/frontend'))).tls;
    imposterTls = (await fx.meshTls(await identity(td, '/ns/shop/sa/imposter'))).tls;
  }

  it('HTTP: each new connection after the first resumes; an allowed caller is allowed and a denied caller denied on every one, and the app sees the caller of the session', async () => {
    await identities();
    const callers = recordCallers(ordersTls);
    const seenByApp: string[] = [];
    const app = http.createServer((req, res) => {
      seenByApp.push(String(req.headers['x-meshlet-peer-identity']));
      res.end('ok');
    });
    const appPort = await listen(app);
    fx.defer(() => closeServer(app));
    // Short keep-alive on both sides: each request after a pause goes on a NEW connection.
    const settings = resolveProxySettings({ timeouts: { idleMs: 200 } });
    const authorizer = new CallerList([FRONTEND]);
    const inbound = new InboundProxy({ tls: ordersTls, authorizer, normalizer: strictPathNormalizer, ports: [{ listenPort: 0, appPort, protocol: 'http', permissive: false }], listenHost: '127.0.0.1', settings });
    await inbound.start();
    fx.defer(() => inbound.drain().then(() => undefined));
    const inboundPort = inbound.boundPorts()[0]!.listenPort;

    async function caller(tls: MeshTls): Promise<number[]> {
      const outbound = new OutboundProxy({
        tls,
        destinations: { mesh: [{ host: ORDERS_HOST, port: 8080, address: { host: '127.0.0.1', port: inboundPort }, expected: { spiffeId: ORDERS } }], plaintext: [] },
        listenHost: '127.0.0.1',
        listenPort: 0,
        settings,
      });
      await outbound.start();
      fx.defer(() => outbound.drain().then(() => undefined));
      const statuses: number[] = [];
      for (let i = 0; i < 3; i++) {
        const res = await request(outbound.boundPort(), { path: `/orders/${i}`, headers: { host: `${ORDERS_HOST}:8080` }, agent: false });
        statuses.push(res.status);
        await waitFor(() => !outbound.registry.list().some((c) => c.role === 'originated'), 'the idle peer connection to close');
      }
      return statuses;
    }

    expect(await caller(frontendTls)).toEqual([200, 200, 200]);
    expect(await caller(imposterTls)).toEqual([403, 403, 403]);
    expect(callers()).toEqual([
      { peer: FRONTEND, resumed: false },
      { peer: FRONTEND, resumed: true },
      { peer: FRONTEND, resumed: true },
      { peer: IMPOSTER, resumed: false },
      { peer: IMPOSTER, resumed: true },
      { peer: IMPOSTER, resumed: true },
    ]);
    expect(authorizer.decisions).toEqual([
      ...Array(3).fill({ peer: FRONTEND, decision: 'allow' }),
      ...Array(3).fill({ peer: IMPOSTER, decision: 'deny' }),
    ]);
    expect(seenByApp).toEqual([FRONTEND, FRONTEND, FRONTEND]);
  });

  it('opaque TCP: connections after the first resume; the decision is taken per connection, so a caller denied since its session was made is denied on the resumed connection', async () => {
    await identities();
    const callers = recordCallers(ordersTls);
    const app = await startEchoApp();
    fx.defer(() => closeServer(app.server));
    const authorizer = new CallerList([FRONTEND, IMPOSTER]);
    const inbound = new OpaqueTcpProxy({ tls: ordersTls, authorizer, ports: [{ listenPort: 0, appPort: app.port }], listenHost: '127.0.0.1' });
    await inbound.start();
    fx.defer(() => inbound.drain().then(() => undefined));
    const inboundPort = inbound.boundPorts()[0]!.listenPort;

    async function outboundFor(tls: MeshTls): Promise<(line: string) => Promise<string>> {
      const outbound = new OpaqueTcpOutbound({
        tls,
        listeners: [{ listenPort: 0, destination: { host: '127.0.0.1', port: inboundPort, expected: { spiffeId: ORDERS }, name: 'orders-db' } }],
      });
      await outbound.start();
      fx.defer(() => outbound.drain().then(() => undefined));
      const port = outbound.boundPorts()[0]!.listenPort;
      return async (line) => (await converse(port, Buffer.from(line))).received.toString();
    }
    const frontend = await outboundFor(frontendTls);
    const imposter = await outboundFor(imposterTls);

    expect([await frontend('f1'), await frontend('f2'), await imposter('i1'), await imposter('i2')]).toEqual(['f1', 'f2', 'i1', 'i2']);
    authorizer.allowed = [FRONTEND]; // a policy change: imposter is no longer allowed
    expect([await frontend('f3'), await imposter('i3')]).toEqual(['f3', '']);

    expect(callers().map((c) => `${c.peer} ${c.resumed}`)).toEqual([
      `${FRONTEND} false`,
      `${FRONTEND} true`,
      `${IMPOSTER} false`,
      `${IMPOSTER} true`,
      `${FRONTEND} true`,
      `${IMPOSTER} true`,
    ]);
    expect(authorizer.decisions).toEqual([
      { peer: FRONTEND, decision: 'allow' },
      { peer: FRONTEND, decision: 'allow' },
      { peer: IMPOSTER, decision: 'allow' },
      { peer: IMPOSTER, decision: 'allow' },
      { peer: FRONTEND, decision: 'allow' },
      { peer: IMPOSTER, decision: 'deny' },
    ]);
    expect(app.accepted).toBe(5);
  });
});
