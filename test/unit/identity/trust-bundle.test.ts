import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildTrustBundles, parseSpiffeBundle, toSpiffeBundle } from '../../../src/data-plane/identity/trust-bundle.ts';
import { pemCertificatesToDer } from '../../../src/data-plane/identity/pem.ts';
import { FIXTURES_DIR } from '../../fixtures/generate.ts';

const fixture = (name: string) => readFileSync(join(FIXTURES_DIR, name), 'utf8');
const roots = fixture('bundle.pem') + fixture('hand-root.pem');

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return (err as { code: string }).code;
  }
  throw new Error('expected a throw');
}

describe('SPIFFE bundle format', () => {
  it('produces a JWK Set of x509-svid keys with one x5c each, sequence and refresh hint', () => {
    const doc = toSpiffeBundle(roots, { sequence: 7, refreshHintSeconds: 300 });
    expect(doc.spiffe_sequence).toBe(7);
    expect(doc.spiffe_refresh_hint).toBe(300);
    expect(doc.keys).toHaveLength(2);
    for (const [i, key] of doc.keys.entries()) {
      expect(key).toMatchObject({ use: 'x509-svid', kty: 'EC', crv: 'P-256' });
      expect(typeof key.x).toBe('string');
      expect(key.x5c).toEqual([pemCertificatesToDer(roots)[i]!.toString('base64')]);
    }
  });

  it('round-trips through JSON text back to the same PEM', () => {
    const json = JSON.stringify(toSpiffeBundle(roots, { sequence: 1 }));
    expect(parseSpiffeBundle(json)).toEqual({ x509AuthoritiesPem: roots, sequence: 1 });
  });

  it('skips JWT authorities and unknown uses; an empty key set means nothing is trusted', () => {
    const doc = toSpiffeBundle(fixture('bundle.pem'));
    doc.keys.push({ use: 'jwt-svid', kty: 'EC', kid: 'k1' }, { use: 'something-new', kty: 'EC' });
    expect(parseSpiffeBundle(doc).x509AuthoritiesPem).toBe(fixture('bundle.pem'));
    expect(parseSpiffeBundle('{"keys":[]}')).toEqual({ x509AuthoritiesPem: '' });
    expect(toSpiffeBundle('')).toEqual({ keys: [] });
  });

  const bad: Array<[string, string, string]> = [
    ['not JSON', '{keys', 'BUNDLE_MALFORMED_JSON'],
    ['no keys array', '{"spiffe_sequence":1}', 'BUNDLE_NOT_A_JWK_SET'],
    ['a key that is not an object', '{"keys":[3]}', 'BUNDLE_NOT_A_JWK_SET'],
    ['x509-svid without x5c', '{"keys":[{"use":"x509-svid","kty":"EC"}]}', 'BUNDLE_BAD_X509_AUTHORITY'],
    ['x5c with two certificates', '{"keys":[{"use":"x509-svid","kty":"EC","x5c":["AA==","AA=="]}]}', 'BUNDLE_BAD_X509_AUTHORITY'],
    ['x5c that is not a certificate', '{"keys":[{"use":"x509-svid","kty":"EC","x5c":["AAAA"]}]}', 'BUNDLE_BAD_X509_AUTHORITY'],
    ['a negative sequence', '{"keys":[],"spiffe_sequence":-1}', 'BUNDLE_BAD_SEQUENCE'],
    ['a string refresh hint', '{"keys":[],"spiffe_refresh_hint":"5m"}', 'BUNDLE_BAD_REFRESH_HINT'],
  ];
  for (const [what, json, code] of bad) {
    it(`rejects ${what} with ${code}`, () => {
      expect(codeOf(() => parseSpiffeBundle(json))).toBe(code);
    });
  }
});

describe('buildTrustBundles', () => {
  it('maps trust domains to normalised PEM, from a record or from pairs (same domain twice: concatenated)', () => {
    const noisy = `comment before\n${fixture('bundle.pem')}\ncomment after\n`;
    const map = buildTrustBundles({ 'example.org': noisy });
    expect(map.get('example.org')).toBe(fixture('bundle.pem'));
    const pairs = buildTrustBundles([
      ['example.org', fixture('bundle.pem')],
      ['example.org', fixture('hand-root.pem')],
      ['other.org', ''],
    ]);
    expect(pairs.get('example.org')).toBe(roots);
    expect(pairs.get('other.org')).toBe('');
  });

  it('rejects a bad trust domain name and a corrupt certificate up front', () => {
    expect(codeOf(() => buildTrustBundles({ 'Example.org': fixture('bundle.pem') }))).toBe('BUNDLE_BAD_TRUST_DOMAIN');
    expect(codeOf(() => buildTrustBundles({ 'example.org': fixture('malformed.pem') }))).toBe('BUNDLE_BAD_PEM');
  });
});
