// The publish path end to end with real processes (docs/revocation.md "Learning the list from
// the identity service"): a `meshlet identity` process enforcing a mounted list, and a
// `meshlet sidecar` (orders) with the meshlet-ca identity source and MESHLET_REVOCATION_LIST=meshlet-ca,
// which learns the list from the identity service — no list mounted in the sidecar. A caller
// with an open keep-alive mTLS connection to orders is cut off when it is revoked at the
// identity service, and its new handshakes are refused.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueSvid, writeCa, type CertificateAuthority } from '../../../src/control-plane/identity-service/ca.ts';
import { formatRevocationList } from '../../../src/data-plane/identity/revocation/revocation-list.ts';
import { StaticSvidSource } from '../../../src/data-plane/identity/sources/static.ts';
import { MeshTls } from '../../../src/data-plane/tls/mesh-tls.ts';
import { kubeletWrite } from '../../support/kubelet-volume.ts';
import { freePorts } from '../../support/free-port.ts';
import { AUDIENCE, makeCa, startFakeIssuer, tempDir, TRUST_DOMAIN, waitFor, type FakeIssuer } from '../identity-service/support.ts';
import { startSidecarProcess, type SidecarProcess } from '../security/sidecar-process.ts';
import { outcome } from '../tls/mesh-fixture.ts';

const CLI = fileURLToPath(new URL('../../../src/cli.ts', import.meta.url));
const ORDERS = `spiffe://${TRUST_DOMAIN}/ns/shop/sa/orders`;
const FRONTEND = `spiffe://${TRUST_DOMAIN}/ns/web/sa/frontend`;
const KEY = 'revocations.json';
const list = (...ids: string[]): string => formatRevocationList(ids.map((spiffeId) => ({ spiffeId, revokedAt: '2026-12-04T07:00:00Z' })));

let issuer: FakeIssuer;
let dir: string;
let cleanup: () => Promise<void>;
let identity: ChildProcess | undefined;
let sidecar: SidecarProcess | undefined;
let app: Server;
let ca: CertificateAuthority;
let rootPem: string;
let ordersInbound: number;
let ordersAdmin: number;
let caller: MeshTls;

beforeAll(async () => {
  issuer = await startFakeIssuer();
  ({ dir, cleanup } = await tempDir());
  const cas = await makeCa();
  ca = cas.ca;
  rootPem = cas.root.bundlePem;
  await writeCa(join(dir, 'ca'), ca);
  await writeFile(join(dir, 'jwks-ca.crt'), issuer.caPem);
  await writeFile(join(dir, 'api-token'), 'service-token');
  await writeFile(join(dir, 'bundle.crt'), rootPem);
  await writeFile(join(dir, 'orders-token'), await issuer.mint({ namespace: 'shop', serviceAccount: 'orders', audience: AUDIENCE }));
  await kubeletWrite(join(dir, 'revocations'), { [KEY]: list() });

  app = createHttpServer((_req, res) => res.end('orders'));
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  const appPort = (app.address() as AddressInfo).port;
  const [identityPort, admin, inbound, outbound, catchAll] = await freePorts(5);
  ordersInbound = inbound!;
  ordersAdmin = admin!;
  await kubeletWrite(join(dir, 'policy'), {
    'policy.yaml': `apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: orders }
spec:
  servers:
    - name: orders
      selector: { serviceAccount: orders }
      ports: [{ port: ${appPort}, protocol: http }]
      routes:
        - name: all
          path: { prefix: / }
          callers: [{ spiffeId: ${FRONTEND} }]
`,
  });

  identity = spawn(process.execPath, [CLI, 'identity'], {
    env: {
      PATH: process.env['PATH'] ?? '',
      MESHLET_TRUST_DOMAIN: TRUST_DOMAIN,
      MESHLET_CA_DIR: join(dir, 'ca'),
      MESHLET_TOKEN_AUTH: 'jwks',
      MESHLET_JWKS_URL: issuer.jwksUrl,
      MESHLET_JWKS_ISSUER: issuer.issuer,
      MESHLET_JWKS_CA_FILE: join(dir, 'jwks-ca.crt'),
      MESHLET_KUBERNETES_TOKEN_FILE: join(dir, 'api-token'),
      MESHLET_IDENTITY_LISTEN: `127.0.0.1:${identityPort}`,
      MESHLET_IDENTITY_ADMIN_LISTEN: 'off',
      MESHLET_IDENTITY_REVOCATION_LIST: join(dir, 'revocations', KEY),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  identity.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  identity.stderr!.resume();
  await waitFor(() => out.includes('"event":"started"') || identity!.exitCode !== null, 'the identity service to start', 30_000);
  expect(identity.exitCode).toBeNull();

  sidecar = await startSidecarProcess({
    MESHLET_TRUST_DOMAIN: TRUST_DOMAIN,
    MESHLET_NAMESPACE: 'shop',
    MESHLET_SERVICE_ACCOUNT: 'orders',
    MESHLET_IDENTITY_SOURCE: 'meshlet-ca',
    MESHLET_CA_ADDRESS: `127.0.0.1:${identityPort}`,
    MESHLET_TRUST_BUNDLE_FILE: join(dir, 'bundle.crt'),
    MESHLET_TOKEN_FILE: join(dir, 'orders-token'),
    MESHLET_REVOCATION_LIST: 'meshlet-ca',
    MESHLET_POLICY_DIR: join(dir, 'policy'),
    MESHLET_INBOUND_PORTS: `${appPort}:${ordersInbound}/http`,
    MESHLET_INBOUND_CATCHALL_PORT: String(catchAll),
    MESHLET_ADMIN_PORT: String(ordersAdmin),
    MESHLET_ADMIN_ADDRESS: '127.0.0.1',
    MESHLET_OUTBOUND_PORT: String(outbound),
    MESHLET_LOG_LEVEL: 'info',
    MESHLET_DRAIN_TIMEOUT: '2s',
  });

  const svid = await issueSvid(ca, { spiffeId: FRONTEND });
  const source = new StaticSvidSource({ svid, bundles: new Map([[TRUST_DOMAIN, rootPem]]) });
  await source.start();
  caller = new MeshTls(source);
}, 90_000);

afterAll(async () => {
  caller?.close();
  await sidecar?.stop();
  if (identity && identity.exitCode === null) identity.kill('SIGTERM');
  await new Promise<void>((resolve) => app?.close(() => resolve()));
  await issuer?.close();
  await cleanup?.();
});

/** An mTLS connection to orders' inbound port, after one keep-alive request answered 200. */
async function keepAliveConnection(): Promise<TLSSocket> {
  const socket = caller.connect({ host: '127.0.0.1', port: ordersInbound }, { spiffeId: ORDERS }, { ALPNProtocols: ['http/1.1'] });
  socket.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    let got = '';
    socket.once('secureConnect', () => socket.write('GET /x HTTP/1.1\r\nHost: orders\r\n\r\n'));
    socket.on('data', (d: Buffer) => {
      got += d.toString();
      if (got.includes('\r\n\r\norders')) resolve();
    });
    socket.once('close', () => reject(new Error(`closed after ${JSON.stringify(got)}`)));
  });
  expect(socket.destroyed).toBe(false);
  return socket;
}

describe('a sidecar learning the revocation list from the identity service (MESHLET_REVOCATION_LIST=meshlet-ca)', () => {
  it('closes a caller\'s open keep-alive connection once the identity service revokes it, refuses its new handshakes, and re-admits it after removal', async () => {
    const open = await keepAliveConnection();
    const closed = outcome(open);

    await kubeletWrite(join(dir, 'revocations'), { [KEY]: list(FRONTEND) });
    await closed;
    // The log line may reach us a moment after the close.
    await waitFor(() => sidecar!.stderr().includes(`"event":"peer_revoked","spiffeId":"${FRONTEND}","inboundClosed":1`), 'the peer_revoked line');
    await expect(keepAliveConnection()).rejects.toThrow(/closed after ""/);
    const metrics = await (await fetch(`http://127.0.0.1:${ordersAdmin}/metrics`)).text();
    expect(metrics).toMatch(/^meshlet_tls_handshake_failures_total\{direction="inbound",reason="revoked"\} [1-9]/m);
    expect(metrics).toMatch(/^meshlet_revocation_revoked_identities 1$/m);

    await kubeletWrite(join(dir, 'revocations'), { [KEY]: list() });
    await waitFor(() => sidecar!.stderr().includes(`"event":"peer_unrevoked","spiffeId":"${FRONTEND}"`), 'the sidecar to learn the removal', 30_000);
    (await keepAliveConnection()).destroy();
  }, 60_000);
});
