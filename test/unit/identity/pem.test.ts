import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  assertKeyMatchesCertificate,
  derToPem,
  parseCertificatesPem,
  parsePrivateKeyPem,
  pemCertificatesToDer,
  privateKeyToPkcs8Pem,
  splitConcatenatedDer,
} from '../../../src/data-plane/identity/pem.ts';
import { FIXTURES_DIR } from '../../fixtures/generate.ts';

const fixture = (name: string) => readFileSync(join(FIXTURES_DIR, name), 'utf8');

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return (err as { code: string }).code;
  }
  throw new Error('expected a throw');
}

describe('PEM and DER conversions', () => {
  it('round-trips a chain PEM -> DER -> PEM byte for byte', () => {
    const pem = fixture('good-chain.pem');
    const ders = pemCertificatesToDer(pem);
    expect(ders).toHaveLength(2);
    expect(ders.map((d) => derToPem(d)).join('')).toBe(pem);
    // RFC 7468: 64-column base64 lines.
    expect(derToPem(ders[0]!).split('\n').slice(1, -3).every((line) => line.length === 64)).toBe(true);
  });

  it('splits concatenated DER (the Workload API x509_svid field) by ASN.1 lengths', () => {
    const ders = pemCertificatesToDer(fixture('good-chain.pem'));
    const parts = splitConcatenatedDer(Buffer.concat(ders));
    expect(parts.map((p) => p.toString('hex'))).toEqual(ders.map((d) => d.toString('hex')));
    expect(splitConcatenatedDer(new Uint8Array(0))).toEqual([]);
  });

  it('refuses truncated or non-DER concatenations with DER_TRUNCATED', () => {
    const der = Buffer.concat(pemCertificatesToDer(fixture('good-chain.pem')));
    expect(codeOf(() => splitConcatenatedDer(der.subarray(0, der.length - 1)))).toBe('DER_TRUNCATED');
    expect(codeOf(() => splitConcatenatedDer(Buffer.from([0x04, 0x01, 0x00])))).toBe('DER_TRUNCATED');
    expect(codeOf(() => splitConcatenatedDer(Buffer.from([0x30, 0x80, 0x00, 0x00])))).toBe('DER_TRUNCATED');
  });

  it('parses certificates with coded errors for none and for garbage', () => {
    expect(parseCertificatesPem(fixture('good-chain.pem'))).toHaveLength(2);
    expect(codeOf(() => parseCertificatesPem('no pem here'))).toBe('PEM_NO_CERTIFICATE');
    expect(codeOf(() => parseCertificatesPem(fixture('malformed.pem')))).toBe('PEM_MALFORMED_CERTIFICATE');
  });
});

describe('private keys', () => {
  it('loads a PKCS#8 SVID key that matches its certificate, and re-exports it as PKCS#8', () => {
    const key = parsePrivateKeyPem(fixture('good-leaf.key'));
    const [leaf] = parseCertificatesPem(fixture('good-leaf.pem'));
    assertKeyMatchesCertificate(key, leaf!);
    expect(privateKeyToPkcs8Pem(key)).toBe(fixture('good-leaf.key'));
  });

  it('corrupt-key.pem -> PEM_BAD_PRIVATE_KEY; no key block -> PEM_NO_PRIVATE_KEY', () => {
    expect(codeOf(() => parsePrivateKeyPem(fixture('corrupt-key.pem')))).toBe('PEM_BAD_PRIVATE_KEY');
    expect(codeOf(() => parsePrivateKeyPem(fixture('good-leaf.pem')))).toBe('PEM_NO_PRIVATE_KEY');
  });

  it('a key of another certificate -> PEM_KEY_MISMATCH', () => {
    const key = parsePrivateKeyPem(fixture('good-chain.key'));
    const [leaf] = parseCertificatesPem(fixture('good-leaf.pem'));
    expect(codeOf(() => assertKeyMatchesCertificate(key, leaf!))).toBe('PEM_KEY_MISMATCH');
  });
});
