// Suite 4: `meshlet identity` authenticating real ServiceAccount tokens from the TokenRequest
// API of a real API server: through TokenReview, as deploy/'s ServiceAccount with deploy/'s
// RBAC (the process holds a token of meshlet-system/meshlet-identity and the API server's CA),
// and through the API server's own JWKS (/openid/v1/jwks, issuer = --service-account-issuer).
// Tokens bound to a deleted Pod or of a deleted ServiceAccount, and tokens for another
// audience, are refused. A real `meshlet sidecar` (identity source meshlet-ca) gets its SVID
// this way and serves mTLS with it — with the revocation and federation settings the injector
// writes and the identity service's revocation list as deploy/ configures it (an optional
// ConfigMap, absent at first), then refuses a caller once the list names it.
import type * as grpc from '@grpc/grpc-js';
import { X509Certificate } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { applyJsonPatch, DEFAULT_INJECTION_SETTINGS, injectPod, type Pod } from '../../src/control-plane/injector/patch/index.ts';
import { freePorts } from '../../src/dev/demo/free-ports.ts';
import { issueSvid, writeCa, type CertificateAuthority } from '../../src/control-plane/identity-service/ca.ts';
import { AUDIENCE, certify, makeCa, makeCsr, rawClient, serviceCode, TRUST_DOMAIN, type CallOutcome } from '../integration/identity-service/support.ts';
import { clusterSkip, DEPLOY, eventually, namespace, runCli, startMeshlet, tempDir, useControlPlane, type HostProcess } from './support.ts';

const NS = 'shop';
const ORDERS_ID = `spiffe://${TRUST_DOMAIN}/ns/${NS}/sa/orders`;

const skip = clusterSkip();

describe.skipIf(skip)('meshlet identity with real ServiceAccount tokens', () => {
  const cluster = useControlPlane();
  let work: Awaited<ReturnType<typeof tempDir>>;
  let ca: CertificateAuthority;
  let caDir: string;
  let identityTokenFile: string;
  const running: HostProcess[] = [];
  const clients: grpc.Client[] = [];

  /** A token from the TokenRequest API (`kubectl create token`). */
  const token = (sa: string, o: { audience?: string; pod?: string; ns?: string } = {}) =>
    cluster().kubectlOk(['-n', o.ns ?? NS, 'create', 'token', sa, `--audience=${o.audience ?? AUDIENCE}`, '--duration=1h', ...(o.pod ? ['--bound-object-kind=Pod', `--bound-object-name=${o.pod}`] : [])]).then((t) => t.trim());

  const pod = (name: string, sa: string) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: NS },
    spec: { serviceAccountName: sa, containers: [{ name: 'app', image: 'registry.invalid/meshlet-test/app:1' }] },
  });

  /** `meshlet identity` as a host process, authenticating with `mode`. */
  async function startIdentity(mode: 'token-review' | 'jwks' | 'both', extraEnv: Record<string, string> = {}): Promise<{ address: string; client: grpc.Client; process: HostProcess }> {
    const cp = cluster();
    const [port] = (await freePorts(1)) as [number];
    const p = startMeshlet('identity', {
      MESHLET_TRUST_DOMAIN: TRUST_DOMAIN,
      MESHLET_CA_DIR: caDir,
      MESHLET_IDENTITY_LISTEN: `127.0.0.1:${port}`,
      MESHLET_IDENTITY_ADMIN_LISTEN: 'off',
      MESHLET_TOKEN_AUTH: mode,
      MESHLET_KUBERNETES_API_URL: cp.server,
      MESHLET_KUBERNETES_CA_FILE: cp.caFile,
      MESHLET_KUBERNETES_TOKEN_FILE: identityTokenFile,
      MESHLET_JWKS_URL: cp.jwksUrl,
      MESHLET_JWKS_ISSUER: cp.issuer,
      // The refusal tests poll until the API server forgets a token (below): not a rate-limit test.
      MESHLET_IDENTITY_RATE_BURST: '1000',
      ...extraEnv,
    });
    running.push(p);
    await eventually(async () => {
      if (p.child.exitCode !== null) throw new Error(`meshlet identity exited ${p.child.exitCode}: ${p.stderr()}`);
      return p.stdout().includes('"event":"started"');
    }, `meshlet identity (${mode}) to start`);
    const address = `127.0.0.1:${port}`;
    const client = rawClient(address, ca.bundlePem);
    clients.push(client);
    return { address, client, process: p };
  }

  const certifyWith = async (client: grpc.Client, t: string): Promise<CallOutcome> => certify(client, { token: t, csr: await makeCsr() });

  /**
   * Certify until refused. kube-apiserver caches a successful token authentication for 10 s
   * (its token cache in front of every token authenticator), so TokenReview keeps accepting a
   * token for up to that long after its Pod or ServiceAccount is deleted.
   */
  const refusedEventually = async (client: grpc.Client, t: string, what: string): Promise<CallOutcome> => {
    const t0 = Date.now();
    const r = await eventually(async () => {
      const o = await certifyWith(client, t);
      return o.ok ? undefined : o;
    }, what, 60_000);
    process.stderr.write(`[test:cluster] ${what}: refused ${((Date.now() - t0) / 1000).toFixed(1)} s after the deletion\n`);
    return r;
  };

  beforeAll(async () => {
    work = await tempDir('meshlet-cluster-identity-');
    const cp = cluster();
    // deploy/ as shipped: the meshlet-identity ServiceAccount and its TokenReview RBAC.
    await cp.kubectlOk(['apply', '-k', DEPLOY]);
    await namespace(cp, NS);
    const serviceAccounts = ['orders', 'doomed', 'short'].map((name) => ({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace: NS } }));
    await cp.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [...serviceAccounts, pod('orders', 'orders'), pod('gone', 'orders'), pod('doomed', 'doomed')] }) });
    // The identity service's own credential: a token of deploy/'s ServiceAccount (what kubelet would mount).
    identityTokenFile = join(work.dir, 'identity-token');
    await writeFile(identityTokenFile, await cp.kubectlOk(['-n', 'meshlet-system', 'create', 'token', 'meshlet-identity', '--duration=1h']));
    ({ ca } = await makeCa());
    caDir = join(work.dir, 'ca');
    await writeCa(caDir, ca);
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    for (const p of running) await p.stop();
    await work?.cleanup();
  });

  describe('MESHLET_TOKEN_AUTH=token-review (TokenReview as deploy/ permits it)', () => {
    let client: grpc.Client;
    beforeAll(async () => {
      ({ client } = await startIdentity('token-review'));
    });

    it('a Pod-bound token from the TokenRequest API gets an SVID for its ServiceAccount', async () => {
      const r = await certifyWith(client, await token('orders', { pod: 'orders' }));
      expect(r.ok, r.ok ? '' : `${r.err.message} ${serviceCode(r)}`).toBe(true);
      if (!r.ok) return;
      expect(r.res.spiffe_id).toBe(ORDERS_ID);
      expect(new X509Certificate(r.res.cert_chain[0]!).subjectAltName).toBe(`URI:${ORDERS_ID}`);
    });

    it('a token for another audience is refused', async () => {
      const r = await certifyWith(client, await token('orders', { audience: 'some-other-service', pod: 'orders' }));
      expect(r.ok).toBe(false);
      expect(serviceCode(r)).toMatch(/^IDENTITY_TOKEN_(INVALID|WRONG_AUDIENCE)$/);
    });

    it('a token bound to a Pod that was deleted is refused', async () => {
      const t = await token('orders', { pod: 'gone' });
      expect((await certifyWith(client, t)).ok).toBe(true);
      await cluster().kubectlOk(['-n', NS, 'delete', 'pod', 'gone', '--wait=true']);
      const r = await refusedEventually(client, t, "token-review: a deleted Pod's token");
      expect(serviceCode(r)).toBe('IDENTITY_TOKEN_INVALID');
    });

    it('a token of a ServiceAccount that was deleted is refused', async () => {
      const unbound = await token('short');
      const bound = await token('doomed', { pod: 'doomed' });
      expect((await certifyWith(client, unbound)).ok).toBe(true);
      await cluster().kubectlOk(['-n', NS, 'delete', 'serviceaccount', 'short', 'doomed', '--wait=true']);
      for (const t of [unbound, bound]) {
        const r = await refusedEventually(client, t, "token-review: a deleted ServiceAccount's token");
        expect(serviceCode(r)).toBe('IDENTITY_TOKEN_INVALID');
      }
    });
  });

  describe("MESHLET_TOKEN_AUTH=jwks (the API server's /openid/v1/jwks)", () => {
    let client: grpc.Client;
    beforeAll(async () => {
      ({ client } = await startIdentity('jwks'));
    });

    it('a token from the TokenRequest API verifies against the issuer keys', async () => {
      const r = await certifyWith(client, await token('orders', { pod: 'orders' }));
      expect(r.ok, r.ok ? '' : `${r.err.message} ${serviceCode(r)}`).toBe(true);
      if (r.ok) expect(r.res.spiffe_id).toBe(ORDERS_ID);
    });

    it('a token for another audience is refused', async () => {
      const r = await certifyWith(client, await token('orders', { audience: 'some-other-service' }));
      expect(serviceCode(r)).toBe('IDENTITY_TOKEN_WRONG_AUDIENCE');
    });
  });

  describe('MESHLET_TOKEN_AUTH=both', () => {
    it("a deleted Pod's token is refused: JWKS alone cannot see the deletion (docs/identity-service.md), TokenReview can", async () => {
      const cp = cluster();
      await cp.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(pod('gone-too', 'orders')) });
      const t = await token('orders', { pod: 'gone-too' });
      const { client } = await startIdentity('both');
      expect((await certifyWith(client, t)).ok).toBe(true);
      await cp.kubectlOk(['-n', NS, 'delete', 'pod', 'gone-too', '--wait=true']);
      const r = await refusedEventually(client, t, "both: a deleted Pod's token");
      expect(serviceCode(r)).toBe('IDENTITY_TOKEN_INVALID');
    });
  });

  describe('a real meshlet sidecar (identity source meshlet-ca)', () => {
    let app: Server;
    afterAll(async () => {
      app?.closeAllConnections();
      await new Promise((r) => (app ? app.close(r) : r(undefined)));
    });

    it('gets its SVID with its Pod-bound token and serves mTLS with it, with the revocation and federation settings the injector writes; a revoked caller is then refused', async () => {
      // The identity service's revocation list as deploy/ configures it: its ConfigMap, read through
      // the API server with deploy/'s RBAC (a Role for that one ConfigMap); it does not exist yet.
      // `configmap:NAME` is in the service's own namespace: the `namespace` file kubelet mounts
      // next to the ServiceAccount token, written here next to the test's token.
      const deployed = parse(await readFile(join(DEPLOY, 'identity/deployment.yaml'), 'utf8'));
      const identityEnv = deployed.spec.template.spec.containers[0].env as { name: string; value: string }[];
      const listSetting = identityEnv.find((e) => e.name === 'MESHLET_IDENTITY_REVOCATION_LIST')!.value;
      expect(listSetting).toBe('configmap:meshlet-revocations');
      await writeFile(join(dirname(identityTokenFile), 'namespace'), 'meshlet-system\n');
      await cluster().kubectl(['-n', 'meshlet-system', 'delete', 'configmap', 'meshlet-revocations', '--ignore-not-found']);
      const identity = await startIdentity('token-review', { MESHLET_IDENTITY_REVOCATION_LIST: listSetting, MESHLET_LOG_LEVEL: 'info' });
      const { address } = identity;
      await eventually(async () => identity.process.stdout().includes('"event":"revocation_list_absent"'), 'the identity service to find no list yet');

      // What the injector gives a meshlet-ca pod, its mount paths moved to directories of this test
      // (the federation ConfigMap absent too: an empty directory).
      const injectedPod: Pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'orders', namespace: NS }, spec: { serviceAccountName: 'orders', containers: [{ name: 'app', image: 'registry.invalid/app:1', ports: [{ containerPort: 8080 }] }] } } as Pod;
      const injection = injectPod(injectedPod, NS, DEFAULT_INJECTION_SETTINGS);
      if (injection.outcome !== 'injected') throw new Error('not injected');
      const proxy = (applyJsonPatch(injectedPod, injection.patch).spec.initContainers as unknown as { name: string; env: { name: string; value?: string }[]; volumeMounts: { name: string; mountPath: string }[] }[]).find((c) => c.name === 'meshlet-proxy')!;
      const injectedEnv = (name: string) => proxy.env.find((e) => e.name === name)?.value;
      expect(injectedEnv('MESHLET_REVOCATION_LIST')).toBe('meshlet-ca');
      expect(injectedEnv('MESHLET_FEDERATION_BUNDLES')).toBe(proxy.volumeMounts.find((m) => m.name === 'meshlet-federation')!.mountPath);
      const federationDir = join(work.dir, 'orders-federation');
      await mkdir(federationDir, { recursive: true });

      app = createServer((req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ path: req.url, caller: req.headers['x-meshlet-peer-identity'] ?? null }));
      });
      await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
      const appPort = (app.address() as AddressInfo).port;
      const [inbound, catchAll, admin, outbound] = (await freePorts(4)) as [number, number, number, number];
      const tokenFile = join(work.dir, 'orders-token');
      await writeFile(tokenFile, await token('orders', { pod: 'orders' }));
      const policyDir = join(work.dir, 'policy');
      await mkdir(policyDir, { recursive: true });
      const sidecar = startMeshlet('sidecar', {
        MESHLET_TRUST_DOMAIN: TRUST_DOMAIN,
        MESHLET_NAMESPACE: NS,
        MESHLET_SERVICE_ACCOUNT: 'orders',
        MESHLET_POD_NAME: 'orders',
        MESHLET_IDENTITY_SOURCE: 'meshlet-ca',
        MESHLET_CA_ADDRESS: address,
        MESHLET_TRUST_BUNDLE_FILE: join(caDir, 'bundle.crt'),
        MESHLET_TOKEN_FILE: tokenFile,
        MESHLET_POLICY_DIR: policyDir,
        MESHLET_DEFAULT_POLICY: 'all-authenticated',
        MESHLET_INBOUND_PORTS: `${appPort}:${inbound}/http`,
        MESHLET_INBOUND_CATCHALL_PORT: String(catchAll),
        MESHLET_ADMIN_PORT: String(admin),
        MESHLET_ADMIN_ADDRESS: '127.0.0.1',
        MESHLET_OUTBOUND_PORT: String(outbound),
        MESHLET_LOG_LEVEL: 'warn',
        MESHLET_REVOCATION_LIST: injectedEnv('MESHLET_REVOCATION_LIST')!,
        MESHLET_FEDERATION_BUNDLES: federationDir,
      });
      running.push(sidecar);
      await eventually(async () => {
        if (sidecar.child.exitCode !== null) throw new Error(`meshlet sidecar exited ${sidecar.child.exitCode}: ${sidecar.stderr()}`);
        return sidecar.stdout().includes('meshlet sidecar: ready');
      }, 'the sidecar to be ready (SVID from meshlet identity)', 60_000);
      expect((await fetch(`http://127.0.0.1:${admin}/ready`)).status).toBe(200);

      // A caller with another mesh identity, dialling the sidecar's inbound listener.
      const callerId = `spiffe://${TRUST_DOMAIN}/ns/web/sa/frontend`;
      const caller = await issueSvid(ca, { spiffeId: callerId });
      const call = () => new Promise<{ status: number; body: string; serverId: string | undefined }>((resolve, reject) => {
        const req = request(`https://127.0.0.1:${inbound}/orders`, {
          cert: caller.certChainPem,
          key: caller.privateKeyPem,
          ca: caller.bundlePem,
          agent: false,
          // X.509-SVID: no hostname check; the SPIFFE ID is checked below.
          checkServerIdentity: () => undefined,
          timeout: 20_000,
        }, (res) => {
          let body = '';
          res.setEncoding('utf8').on('data', (d: string) => (body += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body, serverId: (res.socket as TLSSocket).getPeerCertificate().subjectaltname }));
        });
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.on('error', reject);
        req.end();
      });
      const result = await call();
      expect(result.status, result.body).toBe(200);
      expect(result.serverId).toBe(`URI:${ORDERS_ID}`);
      expect(JSON.parse(result.body)).toMatchObject({ path: '/orders' });

      // The documented command: `meshlet identity revoke … --configmap meshlet-system | kubectl
      // apply -f -`. The identity service sees the ConfigMap through its watch, the sidecar learns
      // the list from the identity service (it mounts none) and refuses the caller's next handshake.
      const listFile = join(work.dir, 'revocations.json');
      const revoke = await runCli(['identity', 'revoke', callerId, '--list', listFile, '--reason', 'cluster test', '--configmap', 'meshlet-system']);
      expect(revoke.code, revoke.stderr).toBe(0);
      const applied = Date.now();
      await cluster().kubectlOk(['apply', '-f', '-'], { input: revoke.stdout });
      await eventually(async () => identity.process.stdout().includes('"event":"revocation_list_loaded"'), 'the identity service to apply the ConfigMap', 30_000);
      process.stderr.write(`[test:cluster] revocation: the identity service applied the ConfigMap ${((Date.now() - applied) / 1000).toFixed(1)} s after kubectl apply\n`);
      const refusal = await eventually(async () => {
        const outcome = await call().then((r) => `HTTP ${r.status}`, (err: Error) => err.message);
        return outcome.startsWith('HTTP ') ? undefined : outcome;
      }, 'the sidecar to refuse the revoked caller (list learned from meshlet identity)', 60_000);
      expect(refusal).not.toMatch(/^HTTP /);
      const metrics = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
      expect(metrics).toMatch(/^meshlet_tls_handshake_failures_total\{[^}]*reason="revoked"[^}]*\} [1-9]/m);
      expect(metrics).toMatch(/^meshlet_revocation_revoked_identities 1$/m);
      // Certify refuses the revoked identity too (its ServiceAccount exists: the list decides).
      await namespace(cluster(), 'web');
      await cluster().kubectlOk(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'frontend', namespace: 'web' } }) });
      const refused = await certifyWith(identity.client, await token('frontend', { ns: 'web' }));
      expect(serviceCode(refused)).toBe('IDENTITY_REVOKED');

      // A malformed list in the ConfigMap is refused; the last good list stays in force.
      await cluster().kubectlOk(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'meshlet-revocations', namespace: 'meshlet-system' }, data: { 'revocations.json': '{"not":"a list"}' } }) });
      await eventually(async () => identity.process.stdout().includes('"event":"revocation_list_rejected"'), 'the identity service to refuse the malformed list', 30_000);
      expect(serviceCode(await certifyWith(identity.client, await token('frontend', { ns: 'web' })))).toBe('IDENTITY_REVOKED');
      // Deleting the ConfigMap does not re-admit anyone either.
      await cluster().kubectlOk(['-n', 'meshlet-system', 'delete', 'configmap', 'meshlet-revocations']);
      await eventually(async () => identity.process.stdout().includes('REVOCATION_LIST_MISSING'), 'the identity service to report the list gone', 30_000);
      expect(serviceCode(await certifyWith(identity.client, await token('frontend', { ns: 'web' })))).toBe('IDENTITY_REVOKED');
      expect(sidecar.child.exitCode).toBeNull();
    });
  });
});
