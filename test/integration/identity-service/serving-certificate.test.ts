// The identity service's own TLS certificate: the self-issued SVID is renewed under a
// running server (new handshakes see the new one), and a certificate for a DNS name (from
// files, e.g. cert-manager) works with a source that checks that name instead.
import { X509Certificate } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createSecureContext, type PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IdentityServer } from '../../../src/control-plane/identity-service/server.ts';
import { RotatingServerCredentials, SelfIssuedServingIdentity } from '../../../src/control-plane/identity-service/serving-identity.ts';
import { JwksAuthenticator } from '../../../src/control-plane/identity-service/token/jwks.ts';
import { MeshletCaSource } from '../../../src/data-plane/identity/sources/meshlet-ca.ts';
import { AUDIENCE, certify, loopbackServerCert, makeCa, makeCsr, SERVER_ID, startFakeIssuer, tempDir, TRUST_DOMAIN, type FakeIssuer } from './support.ts';

let issuer: FakeIssuer;
let jwks: JwksAuthenticator;

beforeAll(async () => {
  issuer = await startFakeIssuer();
  jwks = new JwksAuthenticator({ jwksUrl: issuer.jwksUrl, issuer: issuer.issuer, audience: AUDIENCE, caPem: issuer.caPem });
});
afterAll(async () => {
  await jwks?.close();
  await issuer?.close();
});

/** A client that records the serial of every server certificate it is shown. */
function recordingClient(address: string, rootsPem: string, serials: string[]): grpc.Client {
  const context = createSecureContext({ ca: rootsPem, minVersion: 'TLSv1.3' });
  const credentials = grpc.credentials.createFromSecureContext(context, {
    checkServerIdentity: (_host: string, cert: PeerCertificate) => {
      serials.push(new X509Certificate(cert.raw).serialNumber);
      return undefined;
    },
  });
  return new grpc.Client(address, credentials, { 'grpc.ssl_target_name_override': 'meshlet-identity' });
}

describe('serving certificate', () => {
  it('the self-issued serving SVID is renewed at half-life and new handshakes get it, without a restart', async () => {
    const { root, ca } = await makeCa();
    const serving = await SelfIssuedServingIdentity.create(ca, { spiffeId: SERVER_ID, ttlMs: 3_000 });
    const server = new IdentityServer({ ca, authenticator: jwks, svidTtlMs: 3_600_000, credentials: serving.credentials });
    const port = await server.listen('127.0.0.1', 0);
    const serials: string[] = [];
    const clients: grpc.Client[] = [];
    try {
      const token = await issuer.mint({ namespace: 'shop', serviceAccount: 'orders' });
      const first = recordingClient(`127.0.0.1:${port}`, root.bundlePem, serials);
      clients.push(first);
      expect((await certify(first, { token, csr: await makeCsr() })).ok).toBe(true);
      const initial = serials[0];
      expect(initial).toBeDefined();
      // New connections until one is shown a renewed certificate.
      const deadline = Date.now() + 20_000;
      while (!serials.some((s) => s !== initial)) {
        if (Date.now() > deadline) throw new Error('the serving certificate was never renewed');
        await new Promise((r) => setTimeout(r, 200));
        const c = recordingClient(`127.0.0.1:${port}`, root.bundlePem, serials);
        clients.push(c);
        const out = await certify(c, { token, csr: await makeCsr() });
        expect(out.ok).toBe(true);
      }
    } finally {
      for (const c of clients) c.close();
      await server.close(2_000);
      serving.close();
    }
  });

  it('a certificate for a DNS name, checked by a source configured with that name', async () => {
    const { ca } = await makeCa();
    const dnsName = 'meshlet-identity.meshlet-system.svc';
    const tls = await loopbackServerCert([{ type: 'dns', value: dnsName }]);
    const server = new IdentityServer({ ca, authenticator: jwks, svidTtlMs: 3_600_000, credentials: new RotatingServerCredentials({ certChainPem: tls.certPem, keyPem: tls.keyPem }) });
    const port = await server.listen('127.0.0.1', 0);
    const { dir, cleanup } = await tempDir();
    const tokenPath = join(dir, 'token');
    await writeFile(tokenPath, await issuer.mint({ namespace: 'shop', serviceAccount: 'orders' }));
    const good = new MeshletCaSource({ address: `127.0.0.1:${port}`, trustDomain: TRUST_DOMAIN, rootsPem: tls.certPem, tokenPath, server: { dnsName } });
    const wrong = new MeshletCaSource({ address: `127.0.0.1:${port}`, trustDomain: TRUST_DOMAIN, rootsPem: tls.certPem, tokenPath, server: { dnsName: 'evil.example.com' }, startTimeoutMs: 800, retry: { initialMs: 100, maxMs: 200 } });
    try {
      expect((await good.start()).svid.spiffeId.id).toBe(`spiffe://${TRUST_DOMAIN}/ns/shop/sa/orders`);
      await expect(wrong.start()).rejects.toMatchObject({ code: 'MESHLET_CA_START_TIMEOUT' });
    } finally {
      await good.close();
      await wrong.close();
      await server.close(2_000);
      await cleanup();
    }
  });
});
