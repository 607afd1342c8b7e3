// Shared set-up for the identity service tests: a real CA, a real TLS gRPC server on
// 127.0.0.1:0, a Kubernetes API server stand-in that speaks the real TokenReview JSON over
// HTTPS on loopback, a real JWKS endpoint with real ES256-signed ServiceAccount tokens, and
// CSR builders (good ones and ones named after what is wrong with them).
import * as grpc from '@grpc/grpc-js';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey as JoseKey, type JWK } from 'jose';
import { randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSecureContext, type PeerCertificate } from 'node:tls';
import { pino, type Logger } from 'pino';
import { createIntermediateCa, createRootCa, type CertificateAuthority } from '../../../src/control-plane/identity-service/ca.ts';
import { CERTIFY_METHOD_PATH, identityServiceDefinition, type CertifyRequestMessage, type CertifyResponseMessage } from '../../../src/data-plane/identity/proto/meshlet-identity.ts';
import { IdentityServer, type IdentityServerOptions } from '../../../src/control-plane/identity-service/server.ts';
import { SelfIssuedServingIdentity } from '../../../src/control-plane/identity-service/serving-identity.ts';
import type { TokenAuthenticator } from '../../../src/control-plane/identity-service/token/authenticator.ts';
import { leafSpiffeId } from '../../../src/data-plane/identity/sources/svid-material.ts';
import { x509 } from '../../../src/data-plane/identity/x509-library.ts';

export const TRUST_DOMAIN = 'mesh.test';
export const AUDIENCE = 'meshlet-identity';
export const SERVER_ID = `spiffe://${TRUST_DOMAIN}/ns/meshlet-system/sa/meshlet-identity`;

/** Root (offline in production) + the in-cluster intermediate the service signs with. */
export async function makeCa(): Promise<{ root: CertificateAuthority; ca: CertificateAuthority }> {
  const root = await createRootCa({ trustDomain: TRUST_DOMAIN });
  return { root, ca: await createIntermediateCa(root) };
}

/** Collects pino's JSON lines so a test can assert the log line a refusal wrote. */
export function captureLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, lines };
}

/** A temp dir removed by the returned cleanup. */
export async function tempDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-identity-'));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

// ---------- a TLS server certificate for 127.0.0.1 (the API server / JWKS stand-ins) ----------

export async function loopbackServerCert(sans: { type: 'ip' | 'dns'; value: string }[] = [{ type: 'ip', value: '127.0.0.1' }]): Promise<{ certPem: string; keyPem: string }> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomBytes(8).toString('hex').replace(/^[89a-f]/, '1'),
    name: 'CN=kube-apiserver-test',
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 3600_000),
    keys,
    signingAlgorithm: alg,
    extensions: [new x509.SubjectAlternativeNameExtension(sans), new x509.BasicConstraintsExtension(true, undefined, true)],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
  return { certPem: cert.toString('pem'), keyPem: `-----BEGIN PRIVATE KEY-----\n${pkcs8.match(/.{1,64}/g)!.join('\n')}\n-----END PRIVATE KEY-----\n` };
}

function listenHttps(tlsPair: { certPem: string; keyPem: string }, handler: Parameters<typeof createServer>[1]): Promise<{ server: Server; url: string }> {
  const server = createServer({ cert: tlsPair.certPem, key: tlsPair.keyPem }, handler);
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, url: `https://127.0.0.1:${(server.address() as AddressInfo).port}` })));
}

function closeHttps(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

// ---------- Kubernetes API server stand-in: POST /apis/authentication.k8s.io/v1/tokenreviews ----------

export interface KnownToken {
  namespace: string;
  serviceAccount: string;
  audiences: string[];
  expired?: boolean;
  pod?: string;
}

export interface FakeApiServer {
  url: string;
  caPem: string;
  /** The credential the identity service must present (its own ServiceAccount token file). */
  credentialPath: string;
  /** Tokens this "cluster" issued; the test adds to it. */
  tokens: Map<string, KnownToken>;
  /** TokenReview bodies received, to assert what the service sent. */
  reviews: Record<string, unknown>[];
  /** Simulates an old API server that ignores spec.audiences and answers with its own. */
  ignoreAudiences: boolean;
  /** While set, reviews are received (and recorded) but answered only when it resolves. */
  hold: Promise<void> | undefined;
  close(): Promise<void>;
}

export async function startFakeApiServer(): Promise<FakeApiServer> {
  const tls = await loopbackServerCert();
  const { dir, cleanup } = await tempDir();
  const credential = `svc-${randomBytes(16).toString('hex')}`;
  const credentialPath = join(dir, 'token');
  await writeFile(credentialPath, credential + '\n');
  const fake = { tokens: new Map<string, KnownToken>(), reviews: [] as Record<string, unknown>[], ignoreAudiences: false, hold: undefined as Promise<void> | undefined };
  const { server, url } = await listenHttps(tls, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const hold = fake.hold;
      const send = (code: number, body: unknown) => {
        const answer = () => {
          res.writeHead(code, { 'content-type': 'application/json' });
          res.end(JSON.stringify(body));
        };
        if (hold) void hold.then(answer);
        else answer();
      };
      if (req.method !== 'POST' || req.url !== '/apis/authentication.k8s.io/v1/tokenreviews') return send(404, { kind: 'Status', status: 'Failure', code: 404 });
      if (req.headers.authorization !== `Bearer ${credential}`) return send(401, { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 });
      const review = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { spec: { token: string; audiences?: string[] } };
      fake.reviews.push(review as unknown as Record<string, unknown>);
      const base = { kind: 'TokenReview', apiVersion: 'authentication.k8s.io/v1', metadata: { creationTimestamp: null }, spec: review.spec };
      const known = fake.tokens.get(review.spec.token);
      const wanted = review.spec.audiences ?? ['https://kubernetes.default.svc.cluster.local'];
      if (!known) return send(201, { ...base, status: { user: {}, error: '[invalid bearer token, square/go-jose: error in cryptographic primitive]' } });
      if (known.expired) return send(201, { ...base, status: { user: {}, error: '[invalid bearer token, service account token has expired]' } });
      const matching = known.audiences.filter((a) => wanted.includes(a));
      if (matching.length === 0 && !fake.ignoreAudiences) {
        return send(201, { ...base, status: { user: {}, error: `[invalid bearer token, token audiences ${JSON.stringify(known.audiences)} is invalid for the target audiences ${JSON.stringify(wanted)}]` } });
      }
      const extra = known.pod ? { 'authentication.kubernetes.io/pod-name': [known.pod], 'authentication.kubernetes.io/pod-uid': ['8f5c2a3e-0000-4000-8000-000000000001'] } : {};
      send(201, {
        ...base,
        status: {
          authenticated: true,
          user: {
            username: known.serviceAccount.startsWith('user:') ? known.serviceAccount.slice(5) : `system:serviceaccount:${known.namespace}:${known.serviceAccount}`,
            uid: '1b2c3d4e-0000-4000-8000-000000000002',
            groups: ['system:serviceaccounts', `system:serviceaccounts:${known.namespace}`, 'system:authenticated'],
            extra,
          },
          audiences: fake.ignoreAudiences ? ['https://kubernetes.default.svc.cluster.local'] : matching,
        },
      });
    });
  });
  const api: FakeApiServer = Object.assign(fake, {
    url,
    caPem: tls.certPem,
    credentialPath,
    async close() {
      await closeHttps(server);
      await cleanup();
    },
  });
  return api;
}

/** Registers a new opaque token in the fake cluster and returns it. */
export function issueOpaqueToken(api: FakeApiServer, t: KnownToken): string {
  const token = `eyJ${randomBytes(24).toString('base64url')}`;
  api.tokens.set(token, t);
  return token;
}

// ---------- the cluster's service-account issuer: a JWKS endpoint and real signed JWTs ----------

export const ISSUER = 'https://kubernetes.default.svc.cluster.local';

export interface FakeIssuer {
  jwksUrl: string;
  caPem: string;
  issuer: string;
  mint(claims: MintOptions): Promise<string>;
  close(): Promise<void>;
}

export interface MintOptions {
  namespace: string;
  serviceAccount: string;
  audience?: string | string[];
  issuer?: string;
  /** Seconds from now; negative = already expired. Default 3600. */
  expiresIn?: number;
  /** Seconds from now for nbf. */
  notBefore?: number;
  /** Sign with a key the JWKS does not publish. */
  foreignKey?: boolean;
  /** Override the sub claim. */
  sub?: string;
  /** Drop the kubernetes.io claim. */
  noKubernetesClaim?: boolean;
}

export async function startFakeIssuer(): Promise<FakeIssuer> {
  const tls = await loopbackServerCert();
  const { publicKey, privateKey } = await generateKeyPair('ES256');
  const foreign = await generateKeyPair('ES256');
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: 'sa-key-1', alg: 'ES256', use: 'sig' };
  const { server, url } = await listenHttps(tls, (req, res) => {
    if (req.url !== '/openid/v1/jwks') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/jwk-set+json' });
    res.end(JSON.stringify({ keys: [jwk] }));
  });
  const mint = async (o: MintOptions): Promise<string> => {
    const now = Math.floor(Date.now() / 1000);
    const payload: Record<string, unknown> = o.noKubernetesClaim
      ? {}
      : {
          'kubernetes.io': {
            namespace: o.namespace,
            serviceaccount: { name: o.serviceAccount, uid: '5a6b7c8d-0000-4000-8000-000000000003' },
            pod: { name: `${o.serviceAccount}-7d9f8-abcde`, uid: '5a6b7c8d-0000-4000-8000-000000000004' },
          },
        };
    let jwt = new SignJWT(payload)
      .setProtectedHeader({ alg: 'ES256', kid: 'sa-key-1' })
      .setIssuer(o.issuer ?? ISSUER)
      .setAudience(o.audience ?? AUDIENCE)
      .setSubject(o.sub ?? `system:serviceaccount:${o.namespace}:${o.serviceAccount}`)
      .setIssuedAt(now - 10)
      .setExpirationTime(now + (o.expiresIn ?? 3600));
    if (o.notBefore !== undefined) jwt = jwt.setNotBefore(now + o.notBefore);
    return jwt.sign((o.foreignKey ? foreign.privateKey : privateKey) as JoseKey);
  };
  return { jwksUrl: `${url}/openid/v1/jwks`, caPem: tls.certPem, issuer: ISSUER, mint, close: () => closeHttps(server) };
}

// ---------- CSRs ----------

export interface CsrOptions {
  key?: 'P-256' | 'P-384' | 'RSA';
  sans?: { type: 'dns' | 'ip' | 'email' | 'url'; value: string }[];
  subject?: string;
  requestCa?: boolean;
  /** Embed a different public key than the one that signs: the self-signature cannot verify. */
  keyMismatch?: boolean;
}

export async function makeCsr(o: CsrOptions = {}): Promise<Buffer> {
  const algs = {
    'P-256': { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' },
    'P-384': { name: 'ECDSA', namedCurve: 'P-384', hash: 'SHA-384' },
    RSA: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
  } as const;
  const alg = algs[o.key ?? 'P-256'];
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const other = o.keyMismatch ? ((await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair) : undefined;
  const extensions: x509.Extension[] = [];
  if (o.sans) extensions.push(new x509.SubjectAlternativeNameExtension(o.sans));
  if (o.requestCa) extensions.push(new x509.BasicConstraintsExtension(true, undefined, true));
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    ...(o.subject !== undefined ? { name: o.subject } : {}),
    keys: other ? { privateKey: keys.privateKey, publicKey: other.publicKey } : keys,
    signingAlgorithm: alg,
    extensions,
  });
  return Buffer.from(csr.rawData);
}

// ---------- the identity service and a raw client ----------

export interface RunningService {
  port: number;
  address: string;
  server: IdentityServer;
  serving: SelfIssuedServingIdentity;
  close(): Promise<void>;
}

export async function startIdentityService(
  ca: CertificateAuthority,
  authenticator: TokenAuthenticator,
  extra: Partial<Omit<IdentityServerOptions, 'ca' | 'authenticator' | 'credentials'>> & { port?: number } = {},
): Promise<RunningService> {
  const serving = await SelfIssuedServingIdentity.create(ca, { spiffeId: SERVER_ID, ttlMs: 3600_000 });
  const server = new IdentityServer({ ca, authenticator, svidTtlMs: 3600_000, credentials: serving.credentials, ...extra });
  const port = await server.listen('127.0.0.1', extra.port ?? 0);
  return {
    port,
    address: `127.0.0.1:${port}`,
    server,
    serving,
    async close() {
      await server.close(2_000);
      serving.close();
    },
  };
}

export type CallOutcome = { ok: true; res: CertifyResponseMessage } | { ok: false; err: grpc.ServiceError };

/** A gRPC client that verifies the service's SVID against the roots (as the source does). */
export function rawClient(address: string, rootsPem: string): grpc.Client {
  const context = createSecureContext({ ca: rootsPem, minVersion: 'TLSv1.3' });
  const credentials = grpc.credentials.createFromSecureContext(context, {
    checkServerIdentity: (_host: string, cert: PeerCertificate) => {
      const id = leafSpiffeId(new X509Certificate(cert.raw), 'server');
      return id.id === SERVER_ID ? undefined : new Error(`unexpected server ${id.id}`);
    },
  });
  return new grpc.Client(address, credentials, { 'grpc.ssl_target_name_override': 'meshlet-identity' });
}

/** One Certify call with a well-formed request message. */
export function certify(client: grpc.Client, req: CertifyRequestMessage): Promise<CallOutcome> {
  const m = identityServiceDefinition()['Certify']!;
  return callWith(client, m.requestSerialize, m.responseDeserialize, req);
}

/** One Certify call whose request body is exactly `bytes` (for malformed and oversized requests). */
export function certifyRawBytes(client: grpc.Client, bytes: Buffer): Promise<CallOutcome> {
  const m = identityServiceDefinition()['Certify']!;
  return callWith(client, (b: Buffer) => b, m.responseDeserialize, bytes);
}

function callWith<Req>(client: grpc.Client, ser: (r: Req) => Buffer, de: (b: Buffer) => unknown, req: Req): Promise<CallOutcome> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(CERTIFY_METHOD_PATH, ser, de as (b: Buffer) => CertifyResponseMessage, req, new grpc.Metadata(), { deadline: new Date(Date.now() + 20_000) }, (err, res) => {
      resolve(err ? { ok: false, err } : { ok: true, res: res! });
    });
  });
}

/** The IDENTITY_* code the service put in the trailers. */
export function serviceCode(outcome: CallOutcome): string | undefined {
  if (outcome.ok) return undefined;
  const v = outcome.err.metadata?.get('meshlet-error-code')[0];
  return typeof v === 'string' ? v : undefined;
}

/** Polls `cond` until true or the deadline (generous: loaded CI machines). */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
