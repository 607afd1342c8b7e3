import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { connect, createServer, type Server } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { pemCertificatesToDer } from '../../../src/data-plane/identity/pem.ts';
import { MAX_CHAIN_LENGTH, SvidVerifyError, verifyX509Svid } from '../../../src/data-plane/identity/svid-verify.ts';
import { buildTrustBundles } from '../../../src/data-plane/identity/trust-bundle.ts';
import { FIXTURE_SPIFFE_ID, FIXTURE_TRUST_DOMAIN, FIXTURES_DIR } from '../../fixtures/generate.ts';

const fixture = (name: string) => readFileSync(join(FIXTURES_DIR, name), 'utf8');
const chainOf = (name: string) => pemCertificatesToDer(fixture(name));
// Both the CA-made root and the hand-built root anchor the fixture trust domain.
const bundles = buildTrustBundles({ [FIXTURE_TRUST_DOMAIN]: fixture('bundle.pem') + fixture('hand-root.pem') });

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SvidVerifyError);
    return (err as SvidVerifyError).code;
  }
  throw new Error('expected verification to fail');
}

describe('verifyX509Svid accepts good SVIDs', () => {
  for (const name of ['good-leaf.pem', 'good-chain.pem', 'hand-good-chain.pem', 'good-empty-subject.pem']) {
    it(`${name}: returns the SPIFFE ID of the leaf`, () => {
      const peer = verifyX509Svid(chainOf(name), bundles);
      expect(peer.spiffeId.id).toBe(FIXTURE_SPIFFE_ID);
      expect(peer.spiffeId.trustDomain).toBe(FIXTURE_TRUST_DOMAIN);
      expect(peer.notAfter.getTime()).toBe(new X509Certificate(chainOf(name)[0]!).validToDate.getTime());
    });
  }

  it('takes PEM strings and node X509Certificate objects as well as DER', () => {
    const ders = chainOf('good-chain.pem');
    const pems = fixture('good-chain.pem').split(/(?<=-----END CERTIFICATE-----\n)/).filter((s) => s.includes('BEGIN'));
    expect(pems).toHaveLength(2);
    expect(verifyX509Svid(pems, bundles).spiffeId.id).toBe(FIXTURE_SPIFFE_ID);
    expect(verifyX509Svid(ders.map((d) => new X509Certificate(d)), bundles).spiffeId.id).toBe(FIXTURE_SPIFFE_ID);
  });

  it('gives the same answer the second time (cached facts), and still checks the time', () => {
    const chain = chainOf('good-chain.pem');
    expect(verifyX509Svid(chain, bundles).spiffeId.id).toBe(FIXTURE_SPIFFE_ID);
    expect(verifyX509Svid(chain, bundles).spiffeId.id).toBe(FIXTURE_SPIFFE_ID);
    const afterExpiry = new Date(new X509Certificate(chain[0]!).validToDate.getTime() + 1000);
    expect(codeOf(() => verifyX509Svid(chain, bundles, afterExpiry))).toBe('SVID_EXPIRED');
  });

  it('ignores an extra, unneeded certificate after the chain', () => {
    const chain = [...chainOf('good-leaf.pem'), ...chainOf('broken-chain.pem').slice(1)];
    expect(verifyX509Svid(chain, bundles).spiffeId.id).toBe(FIXTURE_SPIFFE_ID);
  });
});

describe('verifyX509Svid rejects each defect with its own code', () => {
  const cases: Array<[file: string, code: string]> = [
    ['expired.pem', 'SVID_EXPIRED'],
    ['not-yet-valid.pem', 'SVID_NOT_YET_VALID'],
    ['wrong-trust-domain.pem', 'SVID_UNTRUSTED_TRUST_DOMAIN'],
    ['unknown-root.pem', 'SVID_UNKNOWN_AUTHORITY'],
    ['leaf-ca-true.pem', 'SVID_LEAF_IS_CA'],
    ['two-uri-sans.pem', 'SVID_MULTIPLE_URI_SANS'],
    ['no-uri-san.pem', 'SVID_NO_URI_SAN'],
    ['no-san.pem', 'SVID_NO_URI_SAN'],
    ['non-spiffe-uri.pem', 'SVID_NOT_SPIFFE_URI'],
    ['bad-spiffe-id.pem', 'SVID_BAD_SPIFFE_ID'],
    ['root-id.pem', 'SVID_ROOT_ID'],
    ['leaf-key-cert-sign.pem', 'SVID_LEAF_KEY_CERT_SIGN'],
    ['leaf-crl-sign.pem', 'SVID_LEAF_CRL_SIGN'],
    ['leaf-no-digital-signature.pem', 'SVID_LEAF_NO_DIGITAL_SIGNATURE'],
    ['key-usage-not-critical.pem', 'SVID_KEY_USAGE_NOT_CRITICAL'],
    ['no-key-usage.pem', 'SVID_KEY_USAGE_MISSING'],
    ['eku-server-auth-only.pem', 'SVID_EKU_MISSING_PURPOSE'],
    ['empty-subject-san-not-critical.pem', 'SVID_EMPTY_SUBJECT_SAN_NOT_CRITICAL'],
    ['unknown-critical-extension.pem', 'SVID_UNKNOWN_CRITICAL_EXTENSION'],
    ['broken-chain.pem', 'SVID_BROKEN_CHAIN'],
    ['broken-signature.pem', 'SVID_BROKEN_CHAIN'],
    ['intermediate-not-ca.pem', 'SVID_SIGNER_NOT_CA'],
    ['intermediate-no-key-cert-sign.pem', 'SVID_SIGNER_NOT_CA'],
    ['intermediate-expired.pem', 'SVID_EXPIRED'],
    ['path-len-exceeded.pem', 'SVID_PATH_LEN_EXCEEDED'],
  ];
  for (const [file, code] of cases) {
    it(`${file} -> ${code}`, () => {
      expect(codeOf(() => verifyX509Svid(chainOf(file), bundles))).toBe(code);
      // A second time through the facts cache fails the same way.
      expect(codeOf(() => verifyX509Svid(chainOf(file), bundles))).toBe(code);
    });
  }

  it('malformed.pem -> SVID_MALFORMED_CERTIFICATE (DER and PEM input)', () => {
    expect(codeOf(() => verifyX509Svid(chainOf('malformed.pem'), bundles))).toBe('SVID_MALFORMED_CERTIFICATE');
    expect(codeOf(() => verifyX509Svid([fixture('malformed.pem')], bundles))).toBe('SVID_MALFORMED_CERTIFICATE');
  });

  it('duplicate-san-extension.pem -> SVID_MALFORMED_CERTIFICATE (an extension may appear once)', () => {
    expect(codeOf(() => verifyX509Svid(chainOf('duplicate-san-extension.pem'), bundles))).toBe('SVID_MALFORMED_CERTIFICATE');
  });

  it('an empty chain -> SVID_NO_CERTIFICATE; an over-long one -> SVID_CHAIN_TOO_LONG', () => {
    expect(codeOf(() => verifyX509Svid([], bundles))).toBe('SVID_NO_CERTIFICATE');
    const long = Array.from({ length: MAX_CHAIN_LENGTH + 1 }, () => chainOf('good-leaf.pem')[0]!);
    expect(codeOf(() => verifyX509Svid(long, bundles))).toBe('SVID_CHAIN_TOO_LONG');
  });

  it('validates against the bundle of the LEAF trust domain only', () => {
    // The right roots, filed under another trust domain, do not make example.org trusted.
    const elsewhere = buildTrustBundles({ 'other.org': fixture('bundle.pem') });
    expect(codeOf(() => verifyX509Svid(chainOf('good-leaf.pem'), elsewhere))).toBe('SVID_UNTRUSTED_TRUST_DOMAIN');
    // The leaf of other.org is signed by a root we hold, but only under example.org.
    const both = buildTrustBundles({ [FIXTURE_TRUST_DOMAIN]: fixture('hand-root.pem'), 'other.org': fixture('bundle.pem') });
    expect(codeOf(() => verifyX509Svid(chainOf('wrong-trust-domain.pem'), both))).toBe('SVID_UNKNOWN_AUTHORITY');
  });

  it('an empty bundle (every authority revoked) trusts nothing; a corrupt one is reported', () => {
    expect(codeOf(() => verifyX509Svid(chainOf('good-leaf.pem'), new Map([[FIXTURE_TRUST_DOMAIN, '']])))).toBe('SVID_UNKNOWN_AUTHORITY');
    expect(codeOf(() => verifyX509Svid(chainOf('good-leaf.pem'), new Map([[FIXTURE_TRUST_DOMAIN, fixture('malformed.pem')]])))).toBe('SVID_BAD_TRUST_BUNDLE');
  });

  it('checks the roots validity too (an expired root fails the chain)', () => {
    const rootNotAfter = new X509Certificate(fixture('bundle.pem')).validToDate.getTime();
    const leafNotAfter = new X509Certificate(chainOf('good-leaf.pem')[0]!).validToDate.getTime();
    expect(rootNotAfter).toBeGreaterThan(leafNotAfter);
    expect(codeOf(() => verifyX509Svid(chainOf('good-leaf.pem'), bundles, new Date(rootNotAfter + 1000)))).toBe('SVID_EXPIRED');
  });
});

describe('verifyX509Svid on a real TLS handshake', () => {
  const servers: Server[] = [];
  afterAll(async () => {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  });

  it('verifies the chain a TLS 1.3 server presents (leaf + intermediate) from getPeerCertificate(true)', async () => {
    const server = createServer({ cert: fixture('good-chain.pem'), key: fixture('good-chain.key'), minVersion: 'TLSv1.3' }, (socket) => socket.end());
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const chain = await new Promise<Buffer[]>((resolve, reject) => {
      // No CA and no hostname check here: the SPIFFE verifier decides, as the sidecar does.
      const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false, minVersion: 'TLSv1.3' }, () => {
        const ders: Buffer[] = [];
        let cert = socket.getPeerCertificate(true);
        while (cert && cert.raw) {
          ders.push(cert.raw);
          if (cert.issuerCertificate === cert || !cert.issuerCertificate) break;
          cert = cert.issuerCertificate;
        }
        socket.end();
        resolve(ders);
      });
      socket.on('error', reject);
    });
    expect(chain.length).toBeGreaterThanOrEqual(2);
    expect(verifyX509Svid(chain, bundles).spiffeId.id).toBe(FIXTURE_SPIFFE_ID);
    expect(codeOf(() => verifyX509Svid(chain, buildTrustBundles({ [FIXTURE_TRUST_DOMAIN]: fixture('hand-root.pem') })))).toBe('SVID_UNKNOWN_AUTHORITY');
  });
});
