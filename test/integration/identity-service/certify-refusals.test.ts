// What Certify refuses besides bad tokens: CSRs that ask for more than the token proves or
// cannot prove key possession, keys outside the mTLS profile, malformed and oversized
// requests. Each with its gRPC status, its IDENTITY_* code, a log line and a refusal count.
import { status } from '@grpc/grpc-js';
import type * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CertificateAuthority } from '../../../src/control-plane/identity-service/ca.ts';
import { promCertifyMetrics } from '../../../src/control-plane/identity-service/metrics.ts';
import { JwksAuthenticator } from '../../../src/control-plane/identity-service/token/jwks.ts';
import { verifyX509Svid } from '../../../src/data-plane/identity/svid-verify.ts';
import {
  AUDIENCE,
  captureLogger,
  certify,
  certifyRawBytes,
  makeCa,
  makeCsr,
  rawClient,
  serviceCode,
  startFakeIssuer,
  startIdentityService,
  TRUST_DOMAIN,
  type CsrOptions,
  type FakeIssuer,
  type RunningService,
} from './support.ts';

const ID = `spiffe://${TRUST_DOMAIN}/ns/shop/sa/orders`;

let root: CertificateAuthority;
let issuer: FakeIssuer;
let jwks: JwksAuthenticator;
let service: RunningService;
let client: grpc.Client;
const registry = new Registry();
const log = captureLogger();
let token: string;

beforeAll(async () => {
  const cas = await makeCa();
  root = cas.root;
  issuer = await startFakeIssuer();
  jwks = new JwksAuthenticator({ jwksUrl: issuer.jwksUrl, issuer: issuer.issuer, audience: AUDIENCE, caPem: issuer.caPem });
  service = await startIdentityService(cas.ca, jwks, { logger: log.logger, metrics: promCertifyMetrics(registry), limits: { maxTokenBytes: 4096, maxCsrBytes: 2048 }, maxMessageBytes: 16 * 1024 });
  client = rawClient(service.address, root.bundlePem);
  token = await issuer.mint({ namespace: 'shop', serviceAccount: 'orders' });
});

afterAll(async () => {
  client?.close();
  await service?.close();
  await jwks?.close();
  await issuer?.close();
});

async function refusedCount(reason: string): Promise<number> {
  const metric = await registry.getSingleMetric('meshlet_identity_certificates_refused_total')!.get();
  return metric.values.find((v) => v.labels['reason'] === reason)?.value ?? 0;
}

describe('CSR checks', () => {
  it('accepts a CSR that asks for exactly the SPIFFE ID the token proves (URI SAN and CN)', async () => {
    const out = await certify(client, { token, csr: await makeCsr({ sans: [{ type: 'url', value: ID }], subject: `CN=${ID}` }) });
    if (!out.ok) throw out.err;
    expect(verifyX509Svid(out.res.cert_chain, new Map([[TRUST_DOMAIN, root.bundlePem]])).spiffeId.id).toBe(ID);
  });

  const refusals: [string, CsrOptions, grpc.status, string, string][] = [
    ['whose signature does not verify with its own key', { keyMismatch: true }, status.INVALID_ARGUMENT, 'IDENTITY_CSR_BAD_SIGNATURE', 'csr_bad_signature'],
    ['asking for another SPIFFE ID than the token proves', { sans: [{ type: 'url', value: `spiffe://${TRUST_DOMAIN}/ns/kube-system/sa/admin` }] }, status.PERMISSION_DENIED, 'IDENTITY_CSR_FORBIDDEN_SAN', 'csr_forbidden_name'],
    ['asking for its own ID plus a second URI SAN', { sans: [{ type: 'url', value: ID }, { type: 'url', value: `${ID}-2` }] }, status.PERMISSION_DENIED, 'IDENTITY_CSR_FORBIDDEN_SAN', 'csr_forbidden_name'],
    ['asking for a DNS SAN', { sans: [{ type: 'dns', value: 'orders.shop.svc' }] }, status.PERMISSION_DENIED, 'IDENTITY_CSR_FORBIDDEN_SAN', 'csr_forbidden_name'],
    ['asking for an IP SAN', { sans: [{ type: 'ip', value: '10.0.0.7' }] }, status.PERMISSION_DENIED, 'IDENTITY_CSR_FORBIDDEN_SAN', 'csr_forbidden_name'],
    ['asking for an email SAN', { sans: [{ type: 'email', value: 'orders@example.com' }] }, status.PERMISSION_DENIED, 'IDENTITY_CSR_FORBIDDEN_SAN', 'csr_forbidden_name'],
    ['asking for a subject of its own', { subject: 'CN=admin, O=system:masters' }, status.PERMISSION_DENIED, 'IDENTITY_CSR_FORBIDDEN_SUBJECT', 'csr_forbidden_name'],
    ['asking to be a CA', { requestCa: true }, status.PERMISSION_DENIED, 'IDENTITY_CSR_REQUESTS_CA', 'csr_forbidden_name'],
    ['with a P-384 key', { key: 'P-384' }, status.INVALID_ARGUMENT, 'IDENTITY_CSR_KEY_NOT_P256', 'csr_key_type'],
    ['with an RSA key', { key: 'RSA' }, status.INVALID_ARGUMENT, 'IDENTITY_CSR_KEY_NOT_P256', 'csr_key_type'],
  ];
  for (const [name, csrOptions, grpcStatus, code, reason] of refusals) {
    it(`refuses a CSR ${name}: ${status[grpcStatus]} ${code}`, async () => {
      const before = await refusedCount(reason);
      const out = await certify(client, { token, csr: await makeCsr(csrOptions) });
      expect(out.ok).toBe(false);
      if (out.ok) return;
      expect(out.err.code).toBe(grpcStatus);
      expect(serviceCode(out)).toBe(code);
      expect(out.err.details.length).toBeGreaterThan(10);
      expect(await refusedCount(reason)).toBe(before + 1);
      expect(log.lines.some((l) => l['event'] === 'svid_refused' && l['code'] === code && l['level'] === 40)).toBe(true);
    });
  }

  it('refuses bytes that are not a PKCS#10 CSR: INVALID_ARGUMENT IDENTITY_CSR_MALFORMED', async () => {
    const out = await certify(client, { token, csr: Buffer.from('-----BEGIN CERTIFICATE REQUEST-----') });
    expect(out.ok).toBe(false);
    if (!out.ok) {
      expect(out.err.code).toBe(status.INVALID_ARGUMENT);
      expect(serviceCode(out)).toBe('IDENTITY_CSR_MALFORMED');
    }
  });
});

describe('request shape and size', () => {
  const cases: [string, () => Promise<{ token: string; csr: Buffer }>, string][] = [
    ['no token', async () => ({ token: '', csr: await makeCsr() }), 'IDENTITY_REQUEST_MALFORMED'],
    ['no CSR', async () => ({ token, csr: Buffer.alloc(0) }), 'IDENTITY_REQUEST_MALFORMED'],
    ['a token over the token limit', async () => ({ token: 'e'.repeat(5000), csr: await makeCsr() }), 'IDENTITY_TOKEN_TOO_LARGE'],
    ['a CSR over the CSR limit', async () => ({ token, csr: Buffer.alloc(3000, 0x30) }), 'IDENTITY_CSR_TOO_LARGE'],
  ];
  for (const [name, req, code] of cases) {
    it(`refuses ${name}: INVALID_ARGUMENT ${code}`, async () => {
      const out = await certify(client, await req());
      expect(out.ok).toBe(false);
      if (!out.ok) {
        expect(out.err.code).toBe(status.INVALID_ARGUMENT);
        expect(serviceCode(out)).toBe(code);
      }
    });
  }

  it('refuses bytes that do not decode as a CertifyRequest: INVALID_ARGUMENT, not INTERNAL', async () => {
    const out = await certifyRawBytes(client, Buffer.from([0x0a, 0xff, 0xff, 0xff]));
    expect(out.ok).toBe(false);
    if (!out.ok) {
      expect(out.err.code).toBe(status.INVALID_ARGUMENT);
      expect(serviceCode(out)).toBe('IDENTITY_REQUEST_MALFORMED');
    }
  });

  it('refuses a message over grpc.max_receive_message_length before decoding it: RESOURCE_EXHAUSTED', async () => {
    const out = await certifyRawBytes(client, Buffer.alloc(64 * 1024, 0x41));
    expect(out.ok).toBe(false);
    if (!out.ok) expect(out.err.code).toBe(status.RESOURCE_EXHAUSTED);
    // The service stays up and keeps serving.
    const after = await certify(client, { token, csr: await makeCsr() });
    expect(after.ok).toBe(true);
  });
});

describe('metrics', () => {
  it('counts issued certificates and pre-creates every refusal reason at 0', async () => {
    const text = await registry.metrics();
    expect(text).toMatch(/^meshlet_identity_certificates_issued_total [1-9]\d*$/m);
    for (const reason of ['malformed_request', 'token_invalid', 'token_expired', 'rate_limited', 'authenticator_unavailable']) {
      expect(text).toMatch(new RegExp(`^meshlet_identity_certificates_refused_total\\{reason="${reason}"\\} \\d+$`, 'm'));
    }
  });
});
