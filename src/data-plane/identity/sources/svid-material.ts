import { X509Certificate, type KeyObject } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { MeshletError } from '../../../common/errors/meshlet-error.ts';
import { parseSpiffeId, validateTrustDomain, type SpiffeId } from '../../../common/identity/spiffe-id.ts';
import type { IdentitySnapshot, X509Svid } from '../svid.ts';
import { verifyX509Svid } from '../svid-verify.ts';
import { assertKeyMatchesCertificate, derToPem, parseCertificatesPem, privateKeyToPkcs8Pem } from '../pem.ts';

/**
 * Turns SVID material as a source receives it (a certificate chain, a private key, bundle
 * certificates) into the X509Svid / IdentitySnapshot the TLS layer uses, checking what a
 * source must check before new material may replace the current one: every certificate
 * parses, the leaf carries exactly one URI SAN that is a SPIFFE ID (X.509-SVID §4.1), it is
 * the ID the source announced, the chain verifies against the SVID's own trust bundle, and
 * the private key belongs to the leaf. Anything else would put a certificate in the TLS
 * context that no handshake can use, so it is refused here and the source keeps what it has.
 */
export class SvidMaterialError extends MeshletError {
  constructor(code: SvidMaterialErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
  }
}

export type SvidMaterialErrorCode =
  | 'SVID_NO_URI_SAN'
  | 'SVID_MULTIPLE_URI_SANS'
  | 'SVID_BAD_SPIFFE_ID'
  | 'SVID_ID_MISMATCH'
  | 'SVID_BAD_TRUST_DOMAIN';

/**
 * The URI SANs of a certificate. Node renders SANs as "URI:<uri>" entries joined by ", "; a
 * URI holding a comma or quote would be JSON-quoted, but such a URI is never a SPIFFE ID and
 * fails parseSpiffeId anyway.
 */
function uriSans(cert: X509Certificate): string[] {
  const san = cert.subjectAltName;
  if (!san) return [];
  return san.split(', ').filter((entry) => entry.startsWith('URI:')).map((entry) => entry.slice(4));
}

/**
 * The SPIFFE ID an SVID leaf claims (its one and only URI SAN), read before verification to
 * pick the bundle to verify it against.
 */
export function leafSpiffeId(leaf: X509Certificate, what: string): SpiffeId {
  const uris = uriSans(leaf);
  if (uris.length === 0) throw new SvidMaterialError('SVID_NO_URI_SAN', `${what}: the leaf certificate has no URI SAN, so it carries no SPIFFE ID`);
  if (uris.length > 1) throw new SvidMaterialError('SVID_MULTIPLE_URI_SANS', `${what}: the leaf certificate has ${uris.length} URI SANs; an X509-SVID has exactly one`);
  try {
    return parseSpiffeId(uris[0]!);
  } catch (err) {
    throw new SvidMaterialError('SVID_BAD_SPIFFE_ID', `${what}: the leaf's URI SAN is not a valid SPIFFE ID: ${(err as Error).message}`, { cause: err });
  }
}

/** Canonical PEM (no explanatory text, 64 columns) of parsed certificates. */
function certificatesPem(certs: readonly X509Certificate[]): string {
  let out = '';
  for (const cert of certs) out += derToPem(cert.raw);
  return out;
}

/**
 * Builds a checked X509Svid from a PEM chain (leaf first) and its private key: every
 * certificate parses, the leaf has one SPIFFE ID URI SAN (equal to `expectedSpiffeId` when
 * given: the Workload API's `spiffe_id` field), and the key belongs to the leaf. It does NOT
 * verify the chain against a bundle; buildSnapshot does. Throws PemError or SvidMaterialError.
 */
export function buildX509Svid(chainPem: string, key: KeyObject, what: string, expectedSpiffeId?: string): X509Svid {
  const chain = parseCertificatesPem(chainPem, what);
  const leaf = chain[0]!;
  const spiffeId = leafSpiffeId(leaf, what);
  if (expectedSpiffeId !== undefined && spiffeId.id !== expectedSpiffeId) {
    throw new SvidMaterialError('SVID_ID_MISMATCH', `${what}: the leaf certificate is for ${spiffeId.id}, but ${expectedSpiffeId} was announced`);
  }
  assertKeyMatchesCertificate(key, leaf, `the private key for ${what}`);
  return Object.freeze({
    spiffeId,
    certChainPem: certificatesPem(chain),
    privateKeyPem: privateKeyToPkcs8Pem(key),
    notBefore: leaf.validFromDate,
    notAfter: leaf.validToDate,
  });
}

/**
 * Builds a checked snapshot: buildX509Svid, plus the PEM bundle of the SVID's own trust
 * domain and any federated bundles; then the chain is verified exactly as a peer would verify
 * it (verifyX509Svid: leaf rules, validity, path to the own bundle), so an SVID that no peer
 * would accept never reaches the TLS layer. Throws PemError, SvidMaterialError or
 * SvidVerifyError.
 */
export function buildSnapshot(input: {
  chainPem: string;
  key: KeyObject;
  bundlePem: string;
  federated?: ReadonlyMap<string, string>;
  what: string;
  expectedSpiffeId?: string;
}): IdentitySnapshot {
  const svid = buildX509Svid(input.chainPem, input.key, input.what, input.expectedSpiffeId);
  const own = svid.spiffeId.trustDomain;
  const bundles = new Map<string, string>();
  bundles.set(own, bundlePem(input.bundlePem, `the ${own} bundle`));
  // The own trust domain's bundle is the one that came with the SVID; a federated entry must
  // not silently replace it.
  for (const [td, pem] of input.federated ?? []) if (td !== own) bundles.set(td, bundlePem(pem, `the federated ${td} bundle`));
  verifyX509Svid(parseCertificatesPem(svid.certChainPem, input.what), bundles);
  return Object.freeze({ svid, bundles });
}

/** Canonical PEM of a bundle after checking that each certificate parses (at least one). */
export function bundlePem(pem: string, what: string): string {
  return certificatesPem(parseCertificatesPem(pem, what));
}

/**
 * The trust domain a bundle map key names. The Workload API keys federated bundles by "the
 * SPIFFE ID of the foreign trust domain" (spiffe://example.org); go-spiffe also accepts the
 * bare name, and so do we.
 */
export function trustDomainOfKey(key: string, what: string): string {
  const td = key.startsWith('spiffe://') ? key.slice('spiffe://'.length) : key;
  try {
    validateTrustDomain(td, key);
  } catch (err) {
    throw new SvidMaterialError('SVID_BAD_TRUST_DOMAIN', `${what}: ${JSON.stringify(key)} does not name a trust domain: ${(err as Error).message}`, { cause: err });
  }
  return td;
}

/** True when two snapshots hold the same SVID and the same bundles (so no update is due). */
export function sameSnapshot(a: IdentitySnapshot | undefined, b: IdentitySnapshot): boolean {
  if (a === undefined) return false;
  if (a.svid.certChainPem !== b.svid.certChainPem || a.svid.privateKeyPem !== b.svid.privateKeyPem) return false;
  if (a.bundles.size !== b.bundles.size) return false;
  for (const [td, pem] of a.bundles) if (b.bundles.get(td) !== pem) return false;
  return true;
}

/** checkServerIdentity for a server known by its SPIFFE ID (no hostname check, as SPIFFE says). */
export function checkServerSpiffeId(expected: string, cert: PeerCertificate): Error | undefined {
  try {
    const id = leafSpiffeId(new X509Certificate(cert.raw), 'the identity service certificate');
    if (id.id !== expected) return new Error(`the identity service presented ${id.id}, expected ${expected}`);
    return undefined;
  } catch (err) {
    return err as Error;
  }
}
