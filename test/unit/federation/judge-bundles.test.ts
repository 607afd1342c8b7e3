// How each file of a federation directory is judged against what is loaded (no filesystem:
// the reads are built here). Real CA certificates from the repo's own CA code.
import { beforeAll, describe, expect, it } from 'vitest';
import { createRootCa, type CertificateAuthority } from '../../../src/control-plane/identity-service/ca.ts';
import { FederationError, judgeBundleDirectory, trustDomainOfFileName, type BundleFileRead, type DirectoryRead, type FederatedBundle } from '../../../src/data-plane/identity/federation/bundle-directory.ts';
import { toSpiffeBundle } from '../../../src/data-plane/identity/trust-bundle.ts';
import { derToPem, parseCertificatesPem } from '../../../src/data-plane/identity/pem.ts';

const DIR = '/var/run/meshlet/federation';
const OWN = 'cluster.local';

function read(files: Record<string, string>): DirectoryRead {
  const list: BundleFileRead[] = Object.entries(files).map(([name, text]) => ({ name, path: `${DIR}/${name}`, text, digest: text }));
  return { files: list, fingerprint: JSON.stringify(files) };
}

const bundle = (ca: CertificateAuthority, sequence?: number) => JSON.stringify(toSpiffeBundle(ca.bundlePem, sequence === undefined ? {} : { sequence }));
const canonical = (pem: string) => parseCertificatesPem(pem, 'test').map((c) => derToPem(c.raw)).join('');

function loadedOf(bundles: ReadonlyMap<string, FederatedBundle>): Map<string, FederatedBundle> {
  return new Map(bundles);
}

describe('judgeBundleDirectory', () => {
  let partner: CertificateAuthority;
  let partnerNext: CertificateAuthority;
  let third: CertificateAuthority;

  beforeAll(async () => {
    [partner, partnerNext, third] = await Promise.all([createRootCa({ trustDomain: 'partner.example' }), createRootCa({ trustDomain: 'partner.example' }), createRootCa({ trustDomain: 'third.example' })]);
  });

  it('takes one bundle per key, the key naming its trust domain with or without .json', () => {
    const { bundles, rejected } = judgeBundleDirectory(read({ 'partner.example': bundle(partner, 3), 'third.example.json': bundle(third) }), new Map(), OWN);
    expect(rejected).toEqual([]);
    expect([...bundles.keys()].sort()).toEqual(['partner.example', 'third.example']);
    expect(bundles.get('partner.example')).toEqual({ trustDomain: 'partner.example', pem: canonical(partner.bundlePem), sequence: 3, file: `${DIR}/partner.example` });
    expect(bundles.get('third.example')!.sequence).toBeUndefined();
    expect(trustDomainOfFileName('a.json.json')).toBe('a.json');
  });

  it('refuses a file that is not a SPIFFE bundle, naming the file and keeping the last good bundle', () => {
    const loaded = loadedOf(judgeBundleDirectory(read({ 'partner.example': bundle(partner, 1) }), new Map(), OWN).bundles);
    const { bundles, rejected } = judgeBundleDirectory(read({ 'partner.example': '{"keys": [' }), loaded, OWN);
    expect(bundles.get('partner.example')).toBe(loaded.get('partner.example'));
    expect(rejected).toHaveLength(1);
    expect(rejected[0]).toBeInstanceOf(FederationError);
    expect(rejected[0]).toMatchObject({ code: 'FEDERATION_BUNDLE_INVALID', reason: 'invalid_bundle', file: `${DIR}/partner.example`, trustDomain: 'partner.example' });
    expect(rejected[0]!.message).toMatch(/^\/var\/run\/meshlet\/federation\/partner\.example: not a valid SPIFFE bundle: SPIFFE bundle is not valid JSON: /);
    expect((rejected[0]!.cause as { code: string }).code).toBe('BUNDLE_MALFORMED_JSON');
  });

  it.each([
    ['a JWK Set without keys', '{"spiffe_sequence": 1}', 'SPIFFE bundle must be a JWK Set'],
    ['an x509-svid key without x5c', '{"keys": [{"use": "x509-svid", "kty": "EC"}]}', 'keys[0] (use "x509-svid") must have an "x5c" of exactly one base64 DER certificate'],
    ['an x5c that is no certificate', '{"keys": [{"use": "x509-svid", "kty": "EC", "x5c": ["AAAA"]}]}', 'keys[0].x5c[0] is not a DER X.509 certificate'],
    ['a negative spiffe_sequence', null, 'spiffe_sequence must be a non-negative integer, got -1'],
  ])('refuses %s as invalid_bundle', (_what, text, message) => {
    const body = text ?? JSON.stringify({ ...toSpiffeBundle(partner.bundlePem), spiffe_sequence: -1 });
    const { bundles, rejected } = judgeBundleDirectory(read({ 'partner.example': body }), new Map(), OWN);
    expect(bundles.size).toBe(0);
    expect(rejected[0]).toMatchObject({ reason: 'invalid_bundle', code: 'FEDERATION_BUNDLE_INVALID' });
    expect(rejected[0]!.message).toContain(message);
  });

  it('refuses a key that is no trust domain (bad_trust_domain)', () => {
    const { bundles, rejected } = judgeBundleDirectory(read({ 'Partner.Example': bundle(partner) }), new Map(), OWN);
    expect(bundles.size).toBe(0);
    expect(rejected[0]).toMatchObject({ reason: 'bad_trust_domain', code: 'FEDERATION_BAD_TRUST_DOMAIN', trustDomain: undefined });
    expect(rejected[0]!.message).toContain(`${DIR}/Partner.Example: the key "Partner.Example" does not name a trust domain`);
  });

  it('refuses the mesh\'s own trust domain, with or without .json (own_trust_domain)', () => {
    for (const key of ['cluster.local', 'cluster.local.json']) {
      const { bundles, rejected } = judgeBundleDirectory(read({ [key]: bundle(partner) }), new Map(), OWN);
      expect(bundles.size).toBe(0);
      expect(rejected[0]).toMatchObject({ reason: 'own_trust_domain', code: 'FEDERATION_OWN_TRUST_DOMAIN', trustDomain: 'cluster.local' });
      expect(rejected[0]!.message).toBe(`${DIR}/${key}: "cluster.local" is this mesh's own trust domain, whose bundle comes from the identity source and is never replaced by federation`);
    }
  });

  it('refuses a bundle with no X.509 authority (no_x509_authorities), JWT-only keys included', () => {
    const jwtOnly = JSON.stringify({ keys: [{ use: 'jwt-svid', kty: 'EC', kid: 'k1', crv: 'P-256', x: 'AA', y: 'AA' }], spiffe_sequence: 2 });
    for (const body of ['{"keys": []}', jwtOnly]) {
      const { rejected } = judgeBundleDirectory(read({ 'partner.example': body }), new Map(), OWN);
      expect(rejected[0]).toMatchObject({ reason: 'no_x509_authorities', code: 'FEDERATION_NO_X509_AUTHORITIES' });
      expect(rejected[0]!.message).toContain('to stop trusting "partner.example", delete its key instead');
    }
  });

  it('refuses a lower spiffe_sequence, or none after one (rollback); an equal or higher one applies', () => {
    const loaded = loadedOf(judgeBundleDirectory(read({ 'partner.example': bundle(partner, 5) }), new Map(), OWN).bundles);
    for (const older of [bundle(partnerNext, 4), bundle(partnerNext)]) {
      const { bundles, rejected } = judgeBundleDirectory(read({ 'partner.example': older }), loaded, OWN);
      expect(rejected[0]).toMatchObject({ reason: 'rollback', code: 'FEDERATION_ROLLBACK' });
      expect(bundles.get('partner.example')!.pem).toBe(canonical(partner.bundlePem));
    }
    expect(judgeBundleDirectory(read({ 'partner.example': bundle(partnerNext, 4) }), loaded, OWN).rejected[0]!.message).toBe(
      `${DIR}/partner.example: spiffe_sequence 4 is older than the loaded bundle of "partner.example" (spiffe_sequence 5); a rollback is refused`,
    );
    for (const sequence of [5, 6]) {
      const { bundles, rejected } = judgeBundleDirectory(read({ 'partner.example': bundle(partnerNext, sequence) }), loaded, OWN);
      expect(rejected).toEqual([]);
      expect(bundles.get('partner.example')).toMatchObject({ pem: canonical(partnerNext.bundlePem), sequence });
    }
    // A loaded bundle without a sequence: any new one applies.
    const unsequenced = loadedOf(judgeBundleDirectory(read({ 'partner.example': bundle(partner) }), new Map(), OWN).bundles);
    expect(judgeBundleDirectory(read({ 'partner.example': bundle(partnerNext, 0) }), unsequenced, OWN).rejected).toEqual([]);
  });

  it('refuses both keys when two name the same trust domain (duplicate_trust_domain), keeping the last good', () => {
    const loaded = loadedOf(judgeBundleDirectory(read({ 'partner.example': bundle(partner, 1) }), new Map(), OWN).bundles);
    const { bundles, rejected } = judgeBundleDirectory(read({ 'partner.example': bundle(partnerNext, 2), 'partner.example.json': bundle(partnerNext, 2) }), loaded, OWN);
    expect(rejected.map((e) => [e.reason, e.file])).toEqual([
      ['duplicate_trust_domain', `${DIR}/partner.example`],
      ['duplicate_trust_domain', `${DIR}/partner.example.json`],
    ]);
    expect(rejected[0]!.message).toContain('trust domain "partner.example" is named by two keys (partner.example and partner.example.json); keep one');
    expect(bundles.get('partner.example')).toBe(loaded.get('partner.example'));
  });

  it('applies good files beside refused ones, and drops a domain whose key is gone', () => {
    const loaded = loadedOf(judgeBundleDirectory(read({ 'partner.example': bundle(partner, 1), 'third.example': bundle(third) }), new Map(), OWN).bundles);
    const { bundles, rejected } = judgeBundleDirectory(read({ 'partner.example': 'not json', 'other.example': bundle(third) }), loaded, OWN);
    expect(rejected.map((e) => e.reason)).toEqual(['invalid_bundle']);
    expect([...bundles.keys()].sort()).toEqual(['other.example', 'partner.example']);
  });

  it('passes read failures through as they are (unreadable, too_large)', () => {
    const failure = new FederationError('FEDERATION_BUNDLE_TOO_LARGE', `${DIR}/partner.example`, 'partner.example', 'too big');
    const { rejected } = judgeBundleDirectory({ files: [{ name: 'partner.example', path: `${DIR}/partner.example`, digest: 'x', failure }], fingerprint: 'x' }, new Map(), OWN);
    expect(rejected).toEqual([failure]);
  });
});
