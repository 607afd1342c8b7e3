import { randomBytes, X509Certificate, type KeyObject, type webcrypto } from 'node:crypto';
import { access, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { MeshletError } from '../../common/errors/meshlet-error.ts';
import { assertKeyMatchesCertificate, derToPem, parseCertificatesPem, parsePrivateKeyPem, PemError } from '../../data-plane/identity/pem.ts';
import { parseSpiffeId, validateTrustDomain, type SpiffeId } from '../../common/identity/spiffe-id.ts';
import type { X509Svid } from '../../data-plane/identity/svid.ts';
import { x509 } from '../../data-plane/identity/x509-library.ts';

/**
 * The mesh CA: a root (kept offline in production) and intermediates (one per cluster),
 * and the X.509-SVIDs they sign. Everything it makes follows the X.509-SVID standard; it
 * refuses to make anything else (the defective certificates tests need are built by hand in
 * test/fixtures/generate.ts).
 */

/** WebCrypto key types (the project compiles without the DOM lib, so name them from node:crypto). */
export type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
type SigningAlgorithm = webcrypto.Algorithm | webcrypto.EcdsaParams;

export class CaError extends MeshletError {
  constructor(code: CaErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
  }
}

export type CaErrorCode =
  | 'CA_FILE_MISSING'
  | 'CA_FILE_UNREADABLE'
  /** The output directory or a file in it cannot be created or written (EACCES, EROFS, ENOSPC, …). */
  | 'CA_FILE_UNWRITABLE'
  /** The output path, or a directory on its way, is a file (ENOTDIR, EEXIST from mkdir). */
  | 'CA_OUT_NOT_A_DIRECTORY'
  /** An SVID was to be written into a CA's directory, where its ca.crt would replace the CA's. */
  | 'CA_OUT_IS_A_CA'
  | 'CA_ALREADY_EXISTS'
  | 'CA_CERT_CORRUPT'
  | 'CA_KEY_CORRUPT'
  | 'CA_KEY_MISMATCH'
  | 'CA_NOT_A_CA'
  | 'CA_NO_TRUST_DOMAIN'
  | 'CA_UNSUPPORTED_KEY'
  | 'CA_BAD_TTL'
  | 'CA_EXPIRED'
  | 'CA_PATH_LEN_EXCEEDED'
  | 'CA_SPIFFE_ID_WRONG_TRUST_DOMAIN'
  | 'CA_SPIFFE_ID_NO_PATH';

export interface CertificateAuthority {
  readonly trustDomain: string;
  /** This CA's certificate. */
  readonly certPem: string;
  /** This CA's private key, PKCS#8 PEM. */
  readonly keyPem: string;
  /** Intermediates to append after a leaf this CA signs: this CA's cert and its parents,
   *  up to but excluding the root. '' for a root CA. */
  readonly chainPem: string;
  /** The trust domain's root certificate(s) (the bundle a verifier needs). */
  readonly bundlePem: string;
}

export const DEFAULT_SVID_TTL_MS = 24 * 3600 * 1000;
export const DEFAULT_CA_TTL_MS = 365 * 24 * 3600 * 1000;
/**
 * notBefore is set this far in the past so a peer whose clock is a little behind ours does
 * not reject a certificate issued a moment ago (SPIRE and Linkerd backdate the same way).
 */
export const CLOCK_SKEW_BACKDATE_MS = 60_000;

/** Root may sign one level of intermediates; an intermediate signs leaves only (RFC 5280 pathLenConstraint). */
const ROOT_PATH_LEN = 1;

/** File names in a CA directory (see docs/ca.md). */
export const CA_FILES = { cert: 'ca.crt', key: 'ca.key', chain: 'chain.crt', bundle: 'bundle.crt' } as const;

const EC_P256: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };

/** What a CA needs to sign, derived once per CertificateAuthority object. */
interface Signer {
  readonly key: CryptoKey;
  readonly algorithm: SigningAlgorithm;
  readonly cert: x509.X509Certificate;
  readonly authorityKeyId: x509.AuthorityKeyIdentifierExtension;
  /** pathLenConstraint of this CA, undefined when unlimited. */
  readonly pathLen: number | undefined;
  /** The earliest notAfter of this CA and its parents: nothing it signs may outlive it. */
  readonly expires: Date;
}

const signers = new WeakMap<CertificateAuthority, Promise<Signer>>();

function signerOf(ca: CertificateAuthority): Promise<Signer> {
  let s = signers.get(ca);
  if (!s) {
    s = loadSigner(ca);
    signers.set(ca, s);
    // A failed load must not stick: the caller gets the error, a later call retries.
    s.catch(() => signers.delete(ca));
  }
  return s;
}

async function loadSigner(ca: CertificateAuthority): Promise<Signer> {
  const keyObject = parseCaKey(ca.keyPem, 'CA private key');
  const { importParams, algorithm } = signingParamsFor(keyObject);
  const key = await globalThis.crypto.subtle.importKey('pkcs8', keyObject.export({ format: 'der', type: 'pkcs8' }), importParams, false, ['sign']);
  const cert = new x509.X509Certificate(ca.certPem);
  const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension);
  const authorityKeyId = ski
    ? new x509.AuthorityKeyIdentifierExtension(ski.keyId)
    : await x509.AuthorityKeyIdentifierExtension.create(cert.publicKey);
  const bc = cert.getExtension(x509.BasicConstraintsExtension);
  let expires = cert.notAfter;
  for (const parent of ca.chainPem ? parseCertificatesPem(ca.chainPem, 'CA chain') : []) {
    if (parent.validToDate < expires) expires = parent.validToDate;
  }
  return { key, algorithm, cert, authorityKeyId, pathLen: bc?.pathLength, expires };
}

function signingParamsFor(key: KeyObject): { importParams: webcrypto.EcKeyImportParams | webcrypto.RsaHashedImportParams; algorithm: SigningAlgorithm } {
  const details = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === 'ec' && details?.namedCurve === 'prime256v1') {
    return { importParams: EC_P256, algorithm: { name: 'ECDSA', hash: 'SHA-256' } };
  }
  if (key.asymmetricKeyType === 'ec' && details?.namedCurve === 'secp384r1') {
    return { importParams: { name: 'ECDSA', namedCurve: 'P-384' }, algorithm: { name: 'ECDSA', hash: 'SHA-384' } };
  }
  if (key.asymmetricKeyType === 'rsa') {
    return { importParams: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, algorithm: { name: 'RSASSA-PKCS1-v1_5' } };
  }
  throw new CaError('CA_UNSUPPORTED_KEY', `CA key type ${key.asymmetricKeyType}${details?.namedCurve ? ` (${details.namedCurve})` : ''} is not supported; use ECDSA P-256, P-384 or RSA`);
}

function parseCaKey(pem: string, what: string): KeyObject {
  try {
    return parsePrivateKeyPem(pem, what);
  } catch (err) {
    throw new CaError('CA_KEY_CORRUPT', (err as Error).message, { cause: err });
  }
}

/** A random positive 128-bit serial (CA/B Forum asks for at least 64 bits of entropy). */
function randomSerial(): string {
  const bytes = randomBytes(16);
  // A leading 0 byte would be a non-minimal INTEGER encoding; a high bit would make it negative.
  bytes[0] = (bytes[0]! & 0x7f) || 0x01;
  return bytes.toString('hex');
}

function checkTtl(ttlMs: number | undefined, fallback: number, what: string): number {
  const ttl = ttlMs ?? fallback;
  if (!Number.isFinite(ttl) || ttl <= 0) throw new CaError('CA_BAD_TTL', `${what} TTL must be a positive number of milliseconds, got ${ttlMs}`);
  return ttl;
}

function validity(now: Date, ttlMs: number, signerExpires?: Date): { notBefore: Date; notAfter: Date } {
  if (signerExpires && signerExpires.getTime() <= now.getTime()) {
    throw new CaError('CA_EXPIRED', `the signing CA expired at ${signerExpires.toISOString()}`);
  }
  const notBefore = new Date(now.getTime() - CLOCK_SKEW_BACKDATE_MS);
  let notAfter = new Date(now.getTime() + ttlMs);
  // Clamp, as SPIRE does: a certificate outliving its issuer would fail validation anyway.
  if (signerExpires && notAfter > signerExpires) notAfter = signerExpires;
  return { notBefore, notAfter };
}

async function generateP256(): Promise<CryptoKeyPair> {
  return globalThis.crypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
}

async function pkcs8Pem(key: CryptoKey): Promise<string> {
  return derToPem(await globalThis.crypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

function caExtensions(trustDomain: string, pathLen: number): x509.Extension[] {
  return [
    new x509.BasicConstraintsExtension(true, pathLen, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    // Signing certificates SHOULD carry the trust domain's ID, with no path (X.509-SVID §3).
    new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://${trustDomain}` }], false),
  ];
}

function caName(kind: 'root' | 'intermediate'): string {
  // A short random tag tells apart CAs (and rotated generations of one) in logs and openssl output.
  return `CN=meshlet ${kind} CA ${randomBytes(4).toString('hex')}, O=meshlet`;
}

export async function createRootCa(opts: { trustDomain: string; ttlMs?: number; now?: Date }): Promise<CertificateAuthority> {
  validateTrustDomain(opts.trustDomain);
  const ttl = checkTtl(opts.ttlMs, DEFAULT_CA_TTL_MS, 'root CA');
  const { notBefore, notAfter } = validity(opts.now ?? new Date(), ttl);
  const keys = await generateP256();
  const ski = await x509.SubjectKeyIdentifierExtension.create(keys.publicKey);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: caName('root'),
    notBefore,
    notAfter,
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [...caExtensions(opts.trustDomain, ROOT_PATH_LEN), ski, new x509.AuthorityKeyIdentifierExtension(ski.keyId)],
  });
  const certPem = cert.toString('pem') + '\n';
  return Object.freeze({ trustDomain: opts.trustDomain, certPem, keyPem: await pkcs8Pem(keys.privateKey), chainPem: '', bundlePem: certPem });
}

export async function createIntermediateCa(parent: CertificateAuthority, opts: { ttlMs?: number; now?: Date } = {}): Promise<CertificateAuthority> {
  const signer = await signerOf(parent);
  if (signer.pathLen === 0) {
    throw new CaError('CA_PATH_LEN_EXCEEDED', 'the parent CA has pathLenConstraint 0: it may sign leaf SVIDs only, not intermediate CAs');
  }
  const ttl = checkTtl(opts.ttlMs, DEFAULT_CA_TTL_MS, 'intermediate CA');
  const { notBefore, notAfter } = validity(opts.now ?? new Date(), ttl, signer.expires);
  const keys = await generateP256();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: caName('intermediate'),
    issuer: signer.cert.subjectName,
    notBefore,
    notAfter,
    publicKey: keys.publicKey,
    signingKey: signer.key,
    signingAlgorithm: signer.algorithm,
    extensions: [
      ...caExtensions(parent.trustDomain, 0),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      signer.authorityKeyId,
    ],
  });
  const certPem = cert.toString('pem') + '\n';
  return Object.freeze({
    trustDomain: parent.trustDomain,
    certPem,
    keyPem: await pkcs8Pem(keys.privateKey),
    chainPem: certPem + parent.chainPem,
    bundlePem: parent.bundlePem,
  });
}

/** Signs an SVID for a public key the caller already holds (the identity service uses this with a CSR's key). */
export async function signSvid(
  ca: CertificateAuthority,
  opts: { spiffeId: string; publicKey: CryptoKey; ttlMs?: number; now?: Date },
): Promise<{ certChainPem: string; notBefore: Date; notAfter: Date }> {
  const id = svidIdFor(ca, opts.spiffeId);
  const ttl = checkTtl(opts.ttlMs, DEFAULT_SVID_TTL_MS, 'SVID');
  const signer = await signerOf(ca);
  const { notBefore, notAfter } = validity(opts.now ?? new Date(), ttl, signer.expires);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    // A non-empty subject, so the SAN extension need not be critical (X.509-SVID §2).
    subject: 'O=meshlet',
    issuer: signer.cert.subjectName,
    notBefore,
    notAfter,
    publicKey: opts.publicKey,
    signingKey: signer.key,
    signingAlgorithm: signer.algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth], false),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: id.id }], false),
      await x509.SubjectKeyIdentifierExtension.create(opts.publicKey),
      signer.authorityKeyId,
    ],
  });
  // UTCTime has whole seconds: report what the certificate says, not what was asked.
  return { certChainPem: cert.toString('pem') + '\n' + ca.chainPem, notBefore: cert.notBefore, notAfter: cert.notAfter };
}

function svidIdFor(ca: CertificateAuthority, spiffeId: string): SpiffeId {
  const id = parseSpiffeId(spiffeId);
  if (id.trustDomain !== ca.trustDomain) {
    throw new CaError('CA_SPIFFE_ID_WRONG_TRUST_DOMAIN', `SPIFFE ID ${spiffeId} is not in this CA's trust domain "${ca.trustDomain}"`);
  }
  if (id.path === '') throw new CaError('CA_SPIFFE_ID_NO_PATH', `SPIFFE ID ${spiffeId} has no path: a leaf SVID must name a workload, not the trust domain`);
  return id;
}

/** Generates an ECDSA P-256 key and signs an SVID for it. */
export async function issueSvid(ca: CertificateAuthority, opts: { spiffeId: string; ttlMs?: number; now?: Date }): Promise<X509Svid & { bundlePem: string }> {
  const id = svidIdFor(ca, opts.spiffeId);
  const keys = await generateP256();
  const signed = await signSvid(ca, { ...opts, publicKey: keys.publicKey });
  return {
    spiffeId: id,
    certChainPem: signed.certChainPem,
    privateKeyPem: await pkcs8Pem(keys.privateKey),
    notBefore: signed.notBefore,
    notAfter: signed.notAfter,
    bundlePem: ca.bundlePem,
  };
}

/** Writes a file whole or not at all (a half-written key is worse than none). */
async function writeAtomic(path: string, data: string, mode: number): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, data, { mode });
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => {});
    throw await unwritableError(path, err as NodeJS.ErrnoException);
  }
}

/** The first path on the way to `path` (itself included) that exists and is not a directory. */
async function firstNonDirectory(path: string): Promise<string | undefined> {
  const parts: string[] = [];
  for (let p = resolve(path); ; p = dirname(p)) {
    parts.unshift(p);
    if (dirname(p) === p) break;
  }
  for (const p of parts) {
    try {
      if (!(await stat(p)).isDirectory()) return p;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

function runningAs(): string {
  return typeof process.getuid === 'function' ? ` (running as uid ${process.getuid()}, gid ${process.getgid?.()})` : '';
}

/**
 * A filesystem error while writing a CA or SVID directory, as one line that names the path
 * and says what to do; the errno error stays the cause. Anything else passes through.
 */
async function unwritableError(path: string, err: NodeJS.ErrnoException, action = 'write'): Promise<Error> {
  if (!err || typeof err.code !== 'string') return err;
  if (err.code === 'ENOTDIR' || err.code === 'EEXIST') {
    const file = await firstNonDirectory(path);
    if (file !== undefined && file !== path) {
      return new CaError('CA_OUT_NOT_A_DIRECTORY', `cannot ${action} ${path}: ${file} is a file, not a directory (${err.code}); choose another output directory or move that file away`, { cause: err });
    }
  }
  if (err.code === 'EISDIR') {
    return new CaError('CA_FILE_UNWRITABLE', `cannot ${action} ${path}: it is a directory (EISDIR); remove it or choose another output directory`, { cause: err });
  }
  const hint =
    err.code === 'EACCES' || err.code === 'EPERM'
      ? `${runningAs()}; make ${dirname(path)} writable for this user or choose another output directory`
      : err.code === 'EROFS'
        ? '; the filesystem is read-only: choose an output directory on a writable one'
        : err.code === 'ENOSPC' || err.code === 'EDQUOT'
          ? '; the disk is full: free space or choose another output directory'
          : '';
  return new CaError('CA_FILE_UNWRITABLE', `cannot ${action} ${path}: ${err.code}${hint}`, { cause: err });
}

/** mkdir -p for an output directory, its failures as CaErrors naming the path. */
async function makeOutDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e?.code === 'ENOTDIR' || e?.code === 'EEXIST') {
      const file = (await firstNonDirectory(dir)) ?? dir;
      throw new CaError('CA_OUT_NOT_A_DIRECTORY', `cannot create directory ${dir}: ${file} is a file, not a directory (${e.code}); choose another output directory or move that file away`, { cause: e });
    }
    throw await unwritableError(dir, e, 'create directory');
  }
}

/**
 * DIR/ca.crt, DIR/ca.key (0600), DIR/bundle.crt (the roots), and for an intermediate
 * DIR/chain.crt (this CA's cert and its parents below the root, appended to every leaf).
 */
export async function writeCa(dir: string, ca: CertificateAuthority): Promise<void> {
  await makeOutDir(dir);
  await writeAtomic(join(dir, CA_FILES.key), ca.keyPem, 0o600);
  await writeAtomic(join(dir, CA_FILES.cert), ca.certPem, 0o644);
  await writeAtomic(join(dir, CA_FILES.bundle), ca.bundlePem, 0o644);
  if (ca.chainPem) await writeAtomic(join(dir, CA_FILES.chain), ca.chainPem, 0o644);
}

/** File names of an issued SVID directory (see docs/ca.md): what `meshlet ca issue` writes. */
export const SVID_FILES = { cert: 'svid.crt', key: 'svid.key', bundle: 'bundle.crt' } as const;

/**
 * The same SVID under the names the files identity source reads by default (cert-manager's
 * `tls.crt`, `tls.key`, `ca.crt`), so `MESHLET_SVID_DIR` can point at a `ca issue` directory.
 */
export const SVID_FILES_SOURCE_NAMES = { cert: 'tls.crt', key: 'tls.key', bundle: 'ca.crt' } as const;

/**
 * DIR/svid.crt (leaf first, then intermediates), DIR/svid.key (PKCS#8, 0600), DIR/bundle.crt,
 * and the same contents as DIR/tls.crt, DIR/tls.key (0600), DIR/ca.crt (SVID_FILES_SOURCE_NAMES).
 */
export async function writeSvid(dir: string, svid: X509Svid & { bundlePem: string }): Promise<void> {
  const caKey = join(dir, CA_FILES.key);
  if (await access(caKey).then(() => true, () => false)) {
    throw new CaError('CA_OUT_IS_A_CA', `${dir} holds a CA (${caKey}): its ${CA_FILES.cert} would be replaced by the SVID's ${SVID_FILES_SOURCE_NAMES.bundle}; issue the SVID into a directory of its own`);
  }
  await makeOutDir(dir);
  for (const names of [SVID_FILES, SVID_FILES_SOURCE_NAMES]) {
    await writeAtomic(join(dir, names.key), svid.privateKeyPem, 0o600);
    await writeAtomic(join(dir, names.cert), svid.certChainPem, 0o644);
    await writeAtomic(join(dir, names.bundle), svid.bundlePem, 0o644);
  }
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw unreadableFileError(path, err as NodeJS.ErrnoException);
  }
}

/**
 * A CA file that exists but cannot be read (EACCES from a Secret volume without the pod's
 * fsGroup, EISDIR, …): one line naming the file, the errno code and the uid/gid we ran as,
 * since that is what the operator has to compare with the volume's ownership.
 */
function unreadableFileError(path: string, err: NodeJS.ErrnoException): CaError {
  const hint = err.code === 'EACCES' ? `${runningAs()}; a Secret volume needs the pod's securityContext.fsGroup to be readable by a non-root user` : '';
  return new CaError('CA_FILE_UNREADABLE', `cannot read ${path}: ${err.code ?? 'error'}${hint}`, { cause: err });
}

async function readRequired(path: string): Promise<string> {
  const text = await readOptional(path);
  if (text === undefined) throw new CaError('CA_FILE_MISSING', `${path} does not exist (create a CA with \`meshlet ca init\`)`);
  return text;
}

function parseCaCerts(pem: string, path: string): X509Certificate[] {
  try {
    return parseCertificatesPem(pem, path);
  } catch (err) {
    throw new CaError('CA_CERT_CORRUPT', (err as PemError).message, { cause: err });
  }
}

/** The trust domain a CA certificate names in its `spiffe://<td>` URI SAN. */
function caTrustDomain(cert: X509Certificate, path: string): string {
  const san = new x509.X509Certificate(cert.raw).getExtension(x509.SubjectAlternativeNameExtension);
  const uri = san?.names.items.find((n) => n.type === 'url' && n.value.startsWith('spiffe://'));
  if (!uri) throw new CaError('CA_NO_TRUST_DOMAIN', `${path} has no spiffe://<trust-domain> URI SAN, so its trust domain is unknown`);
  try {
    return parseSpiffeId(uri.value).trustDomain;
  } catch (err) {
    throw new CaError('CA_NO_TRUST_DOMAIN', `${path}: its URI SAN ${uri.value} is not a valid SPIFFE ID`, { cause: err });
  }
}

/**
 * The public half of a CA directory: its trust domain (ca.crt's URI SAN) and its roots
 * (bundle.crt), never the key — what another mesh needs to federate with this one.
 */
export async function readCaTrustBundle(dir: string): Promise<{ trustDomain: string; bundlePem: string; roots: X509Certificate[] }> {
  const certPath = join(dir, CA_FILES.cert);
  const bundlePath = join(dir, CA_FILES.bundle);
  const [cert] = parseCaCerts(await readRequired(certPath), certPath) as [X509Certificate];
  const roots = parseCaCerts(await readRequired(bundlePath), bundlePath);
  for (const root of roots) if (!root.ca) throw new CaError('CA_NOT_A_CA', `${bundlePath} holds a certificate that is not a CA (${root.subject.replaceAll('\n', ', ')})`);
  return { trustDomain: caTrustDomain(cert, certPath), bundlePem: roots.map((c) => derToPem(c.raw)).join(''), roots };
}

/** Loads a CA directory written by writeCa (or by hand, see docs/ca.md), checking it is whole and consistent. */
export async function readCa(dir: string): Promise<CertificateAuthority> {
  const certPath = join(dir, CA_FILES.cert);
  const keyPath = join(dir, CA_FILES.key);
  const certText = await readRequired(certPath);
  const keyPem = await readRequired(keyPath);
  const [cert] = parseCaCerts(certText, certPath) as [X509Certificate];
  if (!cert.ca) throw new CaError('CA_NOT_A_CA', `${certPath} is not a CA certificate (basicConstraints CA:true is missing)`);
  const key = parseCaKey(keyPem, keyPath);
  try {
    assertKeyMatchesCertificate(key, cert, keyPath);
  } catch (err) {
    throw new CaError('CA_KEY_MISMATCH', (err as Error).message, { cause: err });
  }
  signingParamsFor(key);
  const trustDomain = caTrustDomain(cert, certPath);
  const certPem = derToPem(cert.raw);
  const selfSigned = cert.issuer === cert.subject && cert.verify(cert.publicKey);

  const chainPath = join(dir, CA_FILES.chain);
  const chainText = await readOptional(chainPath);
  let chainPem = '';
  if (chainText !== undefined && chainText.trim() !== '') {
    const chain = parseCaCerts(chainText, chainPath);
    if (!chain[0]!.raw.equals(cert.raw)) {
      throw new CaError('CA_CERT_CORRUPT', `${chainPath} must start with this CA's certificate (${certPath})`);
    }
    chainPem = chain.map((c) => derToPem(c.raw)).join('');
  } else if (!selfSigned) {
    throw new CaError('CA_FILE_MISSING', `${chainPath} does not exist: ${certPath} is an intermediate CA, so its chain up to the root is needed`);
  }

  const bundlePath = join(dir, CA_FILES.bundle);
  const bundleText = (await readOptional(bundlePath)) ?? (selfSigned ? certPem : undefined);
  if (bundleText === undefined) throw new CaError('CA_FILE_MISSING', `${bundlePath} does not exist: an intermediate CA needs its root bundle`);
  const bundlePem = parseCaCerts(bundleText, bundlePath).map((c) => derToPem(c.raw)).join('');

  return Object.freeze({ trustDomain, certPem, keyPem, chainPem, bundlePem });
}
