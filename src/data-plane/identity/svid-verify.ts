import { X509Certificate, type KeyObject } from 'node:crypto';
import { MeshletError } from '../../common/errors/meshlet-error.ts';
import { parseCertificatesPem, pemCertificatesToDer } from './pem.ts';
import { parseSpiffeId, type SpiffeId } from '../../common/identity/spiffe-id.ts';
import type { TrustBundles } from './svid.ts';
import { readSvidExtensions, type SvidExtensions } from './x509-extensions.ts';

/**
 * Peer X.509-SVID verification, as the X.509-SVID standard §5 asks: take the SPIFFE ID from
 * the leaf, pick the bundle of THAT trust domain, validate the path leaf -> presented
 * intermediates -> a root of the bundle (RFC 5280: signatures, issuer/subject chaining,
 * validity, CA:true + keyCertSign on every signer, pathLen), check the leaf rules, and never
 * check a hostname.
 *
 * This runs on every mTLS handshake in the sidecar. Signatures and validity use node:crypto's
 * native X509Certificate; what node does not expose (key usage bits and criticality, EKU, URI
 * SANs, pathLen) comes from a small DER walk (./x509-extensions.ts, which says why not
 * @peculiar/x509). Both are done once per distinct certificate and kept in a bounded cache,
 * and a verified (child, issuer) signature is remembered, so a peer seen before costs a map
 * lookup and two date comparisons per certificate.
 */
export class SvidVerifyError extends MeshletError {
  constructor(code: SvidVerifyErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
  }
}

export type SvidVerifyErrorCode =
  | 'SVID_NO_CERTIFICATE'
  | 'SVID_CHAIN_TOO_LONG'
  | 'SVID_MALFORMED_CERTIFICATE'
  | 'SVID_NO_URI_SAN'
  | 'SVID_MULTIPLE_URI_SANS'
  | 'SVID_NOT_SPIFFE_URI'
  | 'SVID_BAD_SPIFFE_ID'
  | 'SVID_ROOT_ID'
  | 'SVID_LEAF_IS_CA'
  | 'SVID_KEY_USAGE_MISSING'
  | 'SVID_KEY_USAGE_NOT_CRITICAL'
  | 'SVID_LEAF_KEY_CERT_SIGN'
  | 'SVID_LEAF_CRL_SIGN'
  | 'SVID_LEAF_NO_DIGITAL_SIGNATURE'
  | 'SVID_EKU_MISSING_PURPOSE'
  | 'SVID_EMPTY_SUBJECT_SAN_NOT_CRITICAL'
  | 'SVID_UNKNOWN_CRITICAL_EXTENSION'
  | 'SVID_EXPIRED'
  | 'SVID_NOT_YET_VALID'
  | 'SVID_UNTRUSTED_TRUST_DOMAIN'
  | 'SVID_BAD_TRUST_BUNDLE'
  | 'SVID_UNKNOWN_AUTHORITY'
  | 'SVID_BROKEN_CHAIN'
  | 'SVID_SIGNER_NOT_CA'
  | 'SVID_PATH_LEN_EXCEEDED';

export interface VerifiedPeer {
  readonly spiffeId: SpiffeId;
  /** The earliest notAfter along the validated path: when this peer's chain stops being valid. */
  readonly notAfter: Date;
}

/** Longer presented chains are refused before any parsing (real SVID chains are 1–3 certs). */
export const MAX_CHAIN_LENGTH = 8;

const OID_BASIC_CONSTRAINTS = '2.5.29.19';
const OID_KEY_USAGE = '2.5.29.15';
const OID_EXT_KEY_USAGE = '2.5.29.37';
const OID_SUBJECT_ALT_NAME = '2.5.29.17';
/** Extensions this verifier understands; any other marked critical fails the cert (RFC 5280 §4.2). */
const UNDERSTOOD_EXTENSIONS = new Set([OID_BASIC_CONSTRAINTS, OID_KEY_USAGE, OID_EXT_KEY_USAGE, OID_SUBJECT_ALT_NAME]);
const EKU_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const EKU_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const EKU_ANY = '2.5.29.37.0';
const KU_DIGITAL_SIGNATURE = 1;
const KU_KEY_CERT_SIGN = 32;
const KU_CRL_SIGN = 64;

/** Everything about one certificate that does not depend on time or on other certificates. */
interface CertFacts {
  readonly cert: X509Certificate;
  readonly label: string;
  readonly notBefore: number;
  readonly notAfter: number;
  readonly isCa: boolean;
  readonly pathLen: number | undefined;
  /** undefined when the extension is absent. */
  readonly keyUsage: number | undefined;
  readonly keyUsageCritical: boolean;
  readonly extKeyUsage: readonly string[] | undefined;
  readonly uriSans: readonly string[];
  readonly sanCritical: boolean;
  readonly subjectEmpty: boolean;
  readonly unknownCriticalExtension: string | undefined;
  /** Issuers whose signature on this certificate has been verified. */
  readonly verifiedIssuers: WeakSet<CertFacts>;
  publicKey?: KeyObject;
  /** The leaf's SPIFFE ID (or why it has none), computed on first use as a leaf. */
  leafId?: SpiffeId | SvidVerifyError;
}

/** Bounded: a sidecar sees a few hundred distinct peer certificates at most; an attacker sending
 *  fresh ones each handshake only churns this, never grows it. */
const FACTS_CACHE_LIMIT = 2048;
const factsCache = new Map<string, CertFacts>();
const BUNDLE_CACHE_LIMIT = 64;
const bundleCache = new Map<string, readonly CertFacts[]>();

function remember<V>(cache: Map<string, V>, limit: number, key: string, value: V): V {
  if (cache.size >= limit) cache.delete(cache.keys().next().value!);
  cache.set(key, value);
  return value;
}

function fail(code: SvidVerifyErrorCode, message: string, cause?: unknown): never {
  throw new SvidVerifyError(code, message, cause === undefined ? undefined : { cause });
}

function describe(cert: X509Certificate): string {
  // node gives undefined (not '') for an empty subject.
  return cert.subject ? cert.subject.replace(/\n/g, ', ') : `serial ${cert.serialNumber}`;
}

function factsOf(input: Buffer | string | X509Certificate, index: number): CertFacts {
  const key = typeof input === 'string' ? input : input instanceof X509Certificate ? input.raw.toString('latin1') : input.toString('latin1');
  const hit = factsCache.get(key);
  if (hit) return hit;
  let cert: X509Certificate;
  try {
    cert = input instanceof X509Certificate ? input : new X509Certificate(input);
  } catch (err) {
    fail('SVID_MALFORMED_CERTIFICATE', `certificate #${index + 1} of the presented chain is not a valid X.509 certificate`, err);
  }
  return remember(factsCache, FACTS_CACHE_LIMIT, key, extractFacts(cert, index));
}

function extractFacts(cert: X509Certificate, index: number): CertFacts {
  let ext: SvidExtensions;
  try {
    ext = readSvidExtensions(cert.raw);
  } catch (err) {
    fail('SVID_MALFORMED_CERTIFICATE', `certificate #${index + 1} (${describe(cert)}): ${(err as Error).message}`, err);
  }
  return {
    cert,
    label: describe(cert),
    notBefore: cert.validFromDate.getTime(),
    notAfter: cert.validToDate.getTime(),
    isCa: ext.basicConstraints?.ca === true,
    pathLen: ext.basicConstraints?.ca ? ext.basicConstraints.pathLen : undefined,
    keyUsage: ext.keyUsage,
    keyUsageCritical: ext.keyUsageCritical,
    extKeyUsage: ext.extKeyUsage,
    uriSans: ext.uriSans,
    sanCritical: ext.sanCritical,
    subjectEmpty: !cert.subject,
    unknownCriticalExtension: ext.criticalExtensions.find((oid) => !UNDERSTOOD_EXTENSIONS.has(oid)),
    verifiedIssuers: new WeakSet(),
  };
}

function rootsOf(trustDomain: string, pem: string): readonly CertFacts[] {
  const hit = bundleCache.get(pem);
  if (hit) return hit;
  let certs: X509Certificate[];
  // An empty bundle is legal (SPIFFE bundle format: no keys = every authority revoked): it trusts nothing.
  if (pemCertificatesToDer(pem).length === 0) return remember(bundleCache, BUNDLE_CACHE_LIMIT, pem, []);
  try {
    certs = parseCertificatesPem(pem, `trust bundle of "${trustDomain}"`);
  } catch (err) {
    fail('SVID_BAD_TRUST_BUNDLE', (err as Error).message, err);
  }
  return remember(bundleCache, BUNDLE_CACHE_LIMIT, pem, certs.map((c, i) => extractFacts(c, i)));
}

/** True when `issuer` signed `child` (issuer name chaining, then the signature). */
function issuedBy(child: CertFacts, issuer: CertFacts): boolean {
  if (!child.cert.issuer || child.cert.issuer !== issuer.cert.subject) return false;
  if (child.verifiedIssuers.has(issuer)) return true;
  issuer.publicKey ??= issuer.cert.publicKey;
  let ok = false;
  try {
    ok = child.cert.verify(issuer.publicKey);
  } catch {
    ok = false; // a key type that cannot have made this signature
  }
  if (ok) child.verifiedIssuers.add(issuer);
  return ok;
}

function leafIdOf(leaf: CertFacts): SpiffeId {
  if (leaf.leafId === undefined) {
    try {
      leaf.leafId = extractLeafId(leaf);
    } catch (err) {
      leaf.leafId = err as SvidVerifyError;
    }
  }
  if (leaf.leafId instanceof SvidVerifyError) throw leaf.leafId;
  return leaf.leafId;
}

function extractLeafId(leaf: CertFacts): SpiffeId {
  const uris = leaf.uriSans;
  if (uris.length === 0) fail('SVID_NO_URI_SAN', `the leaf certificate (${leaf.label}) has no URI SAN, so it carries no SPIFFE ID`);
  if (uris.length > 1) fail('SVID_MULTIPLE_URI_SANS', `the leaf certificate (${leaf.label}) has ${uris.length} URI SANs; an X.509-SVID has exactly one`);
  const uri = uris[0]!;
  if (!/^spiffe:/i.test(uri)) fail('SVID_NOT_SPIFFE_URI', `the leaf certificate's URI SAN ${JSON.stringify(uri)} is not a spiffe:// URI`);
  let id: SpiffeId;
  try {
    id = parseSpiffeId(uri);
  } catch (err) {
    fail('SVID_BAD_SPIFFE_ID', `the leaf certificate's URI SAN is not a valid SPIFFE ID: ${(err as Error).message}`, err);
  }
  if (id.path === '') fail('SVID_ROOT_ID', `the leaf certificate names the trust domain itself (${id.id}); a workload SVID needs a path`);
  return id;
}

function checkLeafRules(leaf: CertFacts): void {
  if (leaf.isCa) fail('SVID_LEAF_IS_CA', `the leaf certificate (${leaf.label}) has CA:true; an X.509-SVID leaf must not be a CA`);
  if (leaf.keyUsage === undefined) fail('SVID_KEY_USAGE_MISSING', `the leaf certificate (${leaf.label}) has no keyUsage extension`);
  if (!leaf.keyUsageCritical) fail('SVID_KEY_USAGE_NOT_CRITICAL', `the leaf certificate (${leaf.label}) has a keyUsage extension not marked critical`);
  if (leaf.keyUsage & KU_KEY_CERT_SIGN) fail('SVID_LEAF_KEY_CERT_SIGN', `the leaf certificate (${leaf.label}) has keyCertSign key usage`);
  if (leaf.keyUsage & KU_CRL_SIGN) fail('SVID_LEAF_CRL_SIGN', `the leaf certificate (${leaf.label}) has cRLSign key usage`);
  if (!(leaf.keyUsage & KU_DIGITAL_SIGNATURE)) fail('SVID_LEAF_NO_DIGITAL_SIGNATURE', `the leaf certificate (${leaf.label}) lacks digitalSignature key usage`);
  const eku = leaf.extKeyUsage;
  if (eku && !eku.includes(EKU_ANY) && !(eku.includes(EKU_SERVER_AUTH) && eku.includes(EKU_CLIENT_AUTH))) {
    fail('SVID_EKU_MISSING_PURPOSE', `the leaf certificate (${leaf.label}) has an extendedKeyUsage without both serverAuth and clientAuth`);
  }
  if (leaf.subjectEmpty && !leaf.sanCritical) {
    fail('SVID_EMPTY_SUBJECT_SAN_NOT_CRITICAL', `the leaf certificate has an empty subject but its subjectAltName extension is not critical (RFC 5280 §4.2.1.6)`);
  }
  checkCriticalExtensions(leaf, 'leaf');
}

function checkCriticalExtensions(facts: CertFacts, role: string): void {
  if (facts.unknownCriticalExtension !== undefined) {
    fail('SVID_UNKNOWN_CRITICAL_EXTENSION', `the ${role} certificate (${facts.label}) has a critical extension ${facts.unknownCriticalExtension} this verifier does not process`);
  }
}

function checkValidity(facts: CertFacts, role: string, now: number): void {
  if (now > facts.notAfter) fail('SVID_EXPIRED', `the ${role} certificate (${facts.label}) expired at ${new Date(facts.notAfter).toISOString()}`);
  if (now < facts.notBefore) fail('SVID_NOT_YET_VALID', `the ${role} certificate (${facts.label}) is not valid before ${new Date(facts.notBefore).toISOString()}`);
}

/** `below`: how many intermediates sit between this signer and the leaf. */
function checkSigner(facts: CertFacts, role: string, below: number, now: number): void {
  if (!facts.isCa) fail('SVID_SIGNER_NOT_CA', `the ${role} certificate (${facts.label}) signed a certificate but is not a CA (basicConstraints CA:true is missing)`);
  if (facts.keyUsage !== undefined && !(facts.keyUsage & KU_KEY_CERT_SIGN)) {
    fail('SVID_SIGNER_NOT_CA', `the ${role} certificate (${facts.label}) signed a certificate but lacks keyCertSign key usage`);
  }
  if (facts.pathLen !== undefined && below > facts.pathLen) {
    fail('SVID_PATH_LEN_EXCEEDED', `the ${role} certificate (${facts.label}) allows ${facts.pathLen} intermediate(s) below it, the path has ${below}`);
  }
  checkCriticalExtensions(facts, role);
  checkValidity(facts, role, now);
}

/**
 * Verifies a peer's X.509-SVID chain against the trust bundles and returns its SPIFFE ID.
 * `chain`: leaf first, then the rest of the presented chain, as DER (what
 * tlsSocket.getPeerCertificate(true) gives as `.raw`), PEM strings (one certificate each), or
 * node X509Certificate objects (tlsSocket.getPeerX509Certificate()). Throws SvidVerifyError.
 */
export function verifyX509Svid(chain: readonly (Buffer | string | X509Certificate)[], bundles: TrustBundles, now: Date = new Date()): VerifiedPeer {
  if (chain.length === 0) fail('SVID_NO_CERTIFICATE', 'the peer presented no certificate');
  if (chain.length > MAX_CHAIN_LENGTH) fail('SVID_CHAIN_TOO_LONG', `the peer presented ${chain.length} certificates; at most ${MAX_CHAIN_LENGTH} are accepted`);
  const at = now.getTime();
  const presented: CertFacts[] = [];
  for (let i = 0; i < chain.length; i++) presented.push(factsOf(chain[i]!, i));
  const leaf = presented[0]!;

  const spiffeId = leafIdOf(leaf);
  checkLeafRules(leaf);
  const bundlePem = bundles.get(spiffeId.trustDomain);
  if (bundlePem === undefined) fail('SVID_UNTRUSTED_TRUST_DOMAIN', `no trust bundle for trust domain "${spiffeId.trustDomain}" (peer ${spiffeId.id})`);
  const roots = rootsOf(spiffeId.trustDomain, bundlePem);
  checkValidity(leaf, 'leaf', at);

  let notAfter = leaf.notAfter;
  let current = leaf;
  // Bit i set: presented[i] is already on the path (each presented cert is used at most once,
  // which also bounds the loop by the chain length).
  let used = 1;
  for (let below = 0; ; below++) {
    for (const root of roots) {
      if (issuedBy(current, root)) {
        checkSigner(root, 'root', below, at);
        return { spiffeId, notAfter: new Date(Math.min(notAfter, root.notAfter)) };
      }
    }
    let next: CertFacts | undefined;
    for (let i = 1; i < presented.length; i++) {
      const candidate = presented[i]!;
      if (used & (1 << i) || !current.cert.issuer || current.cert.issuer !== candidate.cert.subject) continue;
      if (!issuedBy(current, candidate)) {
        fail('SVID_BROKEN_CHAIN', `the signature of ${current === leaf ? 'the leaf' : `intermediate (${current.label})`} does not verify with the key of presented intermediate (${candidate.label})`);
      }
      used |= 1 << i;
      next = candidate;
      break;
    }
    if (!next) {
      const unused = presented.length - popcount(used);
      if (unused > 0) {
        fail('SVID_BROKEN_CHAIN', `the presented chain does not link: nothing presented or trusted issued ${current === leaf ? 'the leaf' : `intermediate (${current.label})`} (issuer ${(current.cert.issuer ?? '').replace(/\n/g, ', ')})`);
      }
      fail('SVID_UNKNOWN_AUTHORITY', `the chain of ${spiffeId.id} does not lead to a root of the "${spiffeId.trustDomain}" trust bundle`);
    }
    checkSigner(next, 'intermediate', below, at);
    if (next.notAfter < notAfter) notAfter = next.notAfter;
    current = next;
  }
}

function popcount(n: number): number {
  let count = 0;
  for (; n; n &= n - 1) count++;
  return count;
}
