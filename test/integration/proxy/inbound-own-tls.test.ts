import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InboundProxy } from '../../../src/data-plane/proxy/inbound/inbound-proxy.ts';
import { resolveProxySettings } from '../../../src/data-plane/proxy/config.ts';
import { createMeshPki, IDS, meshTlsFor, type MeshPki } from './support/mesh-fixture.ts';
import { strictPathNormalizer } from './support/stand-in-policy.ts';

/**
 * An HTTP port whose meshed caller carries the app's own TLS (discovery wraps it in mTLS
 * without ALPN): the ClientHello inside is authorized for the connection and spliced to the
 * app, which terminates its own TLS. And the security side of it: nothing but a ClientHello is
 * ever spliced on an HTTP port — a request behind a CRLF (which HTTP servers may skip, RFC 9112
 * §2.2) or sent after a silence still goes through the HTTP path, so a forged identity header
 * never reaches the app. Real mTLS, real TLS inside it.
 */
let pki: MeshPki;
let inbound: InboundProxy;
let port: number;
let httpsApp: https.Server;
let httpApp: http.Server;
let httpPort: number;
let httpsPort: number;
const appSawIdentity: (string | undefined)[] = [];

beforeAll(async () => {
  pki = await createMeshPki();
  const own = pki.svids.orders;
  httpsApp = https.createServer({ cert: own.certChainPem, key: own.privateKeyPem }, (_req, res) => res.end('app tls'));
  await new Promise<void>((r) => httpsApp.listen(0, '127.0.0.1', r));
  httpsPort = (httpsApp.address() as AddressInfo).port;
  httpApp = http.createServer((req, res) => {
    appSawIdentity.push(req.headers['x-meshlet-peer-identity'] as string | undefined);
    res.end('app http');
  });
  await new Promise<void>((r) => httpApp.listen(0, '127.0.0.1', r));
  httpPort = (httpApp.address() as AddressInfo).port;
  const allow = { authorize: () => ({ decision: 'allow' as const, route: 'all', reason: 'test' }) };
  inbound = new InboundProxy({
    tls: meshTlsFor(pki.svids.orders),
    authorizer: allow,
    normalizer: strictPathNormalizer,
    ports: [{ listenPort: 0, appPort: httpsPort, protocol: 'http' }, { listenPort: 0, appPort: httpPort, protocol: 'http' }],
    listenHost: '127.0.0.1',
    settings: resolveProxySettings({ timeouts: { protocolDetectMs: 300 } }),
    opaque: { authorizer: allow },
  });
  await inbound.start();
  port = inbound.boundPorts()[0]!.listenPort;
});
afterAll(async () => {
  await inbound?.drain();
  httpsApp?.close();
  httpApp?.close();
});

/** mTLS to the inbound as frontend, with no ALPN (what meshlet's outbound sends for opaque bytes). */
function mtls(to: number): Promise<tls.TLSSocket> {
  const me = pki.svids.frontend;
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: to, cert: me.certChainPem, key: me.privateKeyPem, ca: me.bundlePem, checkServerIdentity: () => undefined });
    s.once('secureConnect', () => resolve(s));
    s.once('error', reject);
  });
}

function readAll(s: tls.TLSSocket): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    s.on('data', (d) => (text += d.toString('latin1')));
    s.on('close', () => resolve(text));
    s.on('error', () => undefined);
  });
}

describe("the app's own TLS on an HTTP port", () => {
  it('a ClientHello inside the mTLS reaches the app untouched: the app answers over its own TLS', async () => {
    const outer = await mtls(port);
    const inner = tls.connect({ socket: outer, rejectUnauthorized: false, servername: 'orders.shop' });
    await new Promise<void>((resolve, reject) => {
      inner.once('secureConnect', () => resolve());
      inner.once('error', reject);
    });
    // The certificate inside is the app's own, not the sidecar's answer to the outer handshake.
    expect(inner.getPeerCertificate().fingerprint256).toBe(new (await import('node:crypto')).X509Certificate(pki.svids.orders.certChainPem).fingerprint256);
    const got = readAll(inner);
    inner.write('GET / HTTP/1.1\r\nhost: orders\r\nconnection: close\r\n\r\n');
    expect(await got).toMatch(/app tls$/);
  });

  it('a request behind a CRLF is still HTTP: the forged identity header is replaced by the verified one', async () => {
    const s = await mtls(inbound.boundPorts()[1]!.listenPort);
    const got = readAll(s);
    s.write('\r\nGET / HTTP/1.1\r\nhost: orders\r\nx-meshlet-peer-identity: spiffe://cluster.local/ns/ops/sa/admin\r\nconnection: close\r\n\r\n');
    const text = await got;
    expect(text.slice(0, 12), text).toBe('HTTP/1.1 200');
    expect(appSawIdentity.at(-1)).toBe(IDS.frontend);
  });

  it('a request after a silence longer than the detection wait is still HTTP (never spliced raw)', async () => {
    const s = await mtls(inbound.boundPorts()[1]!.listenPort);
    const got = readAll(s);
    await new Promise((r) => setTimeout(r, 500));
    s.write('GET / HTTP/1.1\r\nhost: orders\r\nx-meshlet-peer-identity: spiffe://cluster.local/ns/ops/sa/admin\r\nconnection: close\r\n\r\n');
    const text = await got;
    expect(text.slice(0, 12), text).toBe('HTTP/1.1 200');
    expect(appSawIdentity.at(-1)).toBe(IDS.frontend);
  });
});
