import { createPrivateKey, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { MeshletError } from '../../common/errors/meshlet-error.ts';

/**
 * PEM and DER plumbing for certificates and keys. Certificates travel as PEM in files and
 * Kubernetes Secrets, as DER from TLS sockets, and as concatenated DER in the SPIFFE
 * Workload API; every place that converts between them goes through here.
 */
export class PemError extends MeshletError {
  constructor(code: PemErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
  }
}

export type PemErrorCode =
  | 'PEM_NO_CERTIFICATE'
  | 'PEM_MALFORMED_CERTIFICATE'
  | 'PEM_NO_PRIVATE_KEY'
  | 'PEM_BAD_PRIVATE_KEY'
  | 'PEM_KEY_MISMATCH'
  | 'DER_TRUNCATED';

const CERTIFICATE_BLOCK = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]*?)-----END CERTIFICATE-----/g;

/** The DER bytes of every CERTIFICATE block in `pem`, in order. Other blocks are skipped. */
export function pemCertificatesToDer(pem: string): Buffer[] {
  const out: Buffer[] = [];
  for (const m of pem.matchAll(CERTIFICATE_BLOCK)) out.push(Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'));
  return out;
}

/** One PEM block, 64 columns as RFC 7468 asks, with a trailing newline. */
export function derToPem(der: Uint8Array | ArrayBuffer, label = 'CERTIFICATE'): string {
  const b64 = Buffer.from(der instanceof ArrayBuffer ? new Uint8Array(der) : der).toString('base64');
  const lines: string[] = [`-----BEGIN ${label}-----`];
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  lines.push(`-----END ${label}-----`, '');
  return lines.join('\n');
}

/**
 * Parses every certificate of a PEM bundle/chain with node:crypto. Throws PEM_NO_CERTIFICATE
 * when there is none and PEM_MALFORMED_CERTIFICATE (naming the block) when one is not DER.
 */
export function parseCertificatesPem(pem: string, what = 'PEM'): X509Certificate[] {
  const ders = pemCertificatesToDer(pem);
  if (ders.length === 0) throw new PemError('PEM_NO_CERTIFICATE', `${what} holds no CERTIFICATE block`);
  return ders.map((der, i) => {
    try {
      return new X509Certificate(der);
    } catch (err) {
      throw new PemError('PEM_MALFORMED_CERTIFICATE', `${what}: certificate #${i + 1} is not a valid X.509 certificate`, { cause: err });
    }
  });
}

/**
 * Splits concatenated DER certificates (the Workload API's x509_svid and bundle fields: not a
 * SEQUENCE, just certificates back to back) by their outer ASN.1 lengths.
 */
export function splitConcatenatedDer(buf: Uint8Array): Buffer[] {
  const out: Buffer[] = [];
  let off = 0;
  while (off < buf.length) {
    if (buf[off] !== 0x30 || off + 2 > buf.length) throw new PemError('DER_TRUNCATED', `concatenated DER: no SEQUENCE at byte ${off}`);
    const first = buf[off + 1]!;
    let len: number;
    let header: number;
    if (first < 0x80) {
      len = first;
      header = 2;
    } else {
      const n = first & 0x7f;
      // Certificates are far below 2^32 bytes; longer length fields (or indefinite 0x80) are not DER.
      if (n === 0 || n > 4 || off + 2 + n > buf.length) throw new PemError('DER_TRUNCATED', `concatenated DER: bad length at byte ${off}`);
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + buf[off + 2 + i]!;
      header = 2 + n;
    }
    const end = off + header + len;
    if (end > buf.length) throw new PemError('DER_TRUNCATED', `concatenated DER: certificate at byte ${off} runs past the end (${end} > ${buf.length})`);
    out.push(Buffer.from(buf.subarray(off, end)));
    off = end;
  }
  return out;
}

/** Parses a private key PEM (PKCS#8, or SEC1/PKCS#1 for keys made by other tools) with a coded error. */
export function parsePrivateKeyPem(pem: string, what = 'private key'): KeyObject {
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) throw new PemError('PEM_NO_PRIVATE_KEY', `${what} holds no PRIVATE KEY block`);
  try {
    return createPrivateKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new PemError('PEM_BAD_PRIVATE_KEY', `${what} is not a valid private key (${(err as Error).message})`, { cause: err });
  }
}

/** Throws PEM_KEY_MISMATCH unless `key` is the private half of `cert`'s public key. */
export function assertKeyMatchesCertificate(key: KeyObject, cert: X509Certificate, what = 'private key'): void {
  const fromKey = createPublicKey(key).export({ format: 'der', type: 'spki' });
  const fromCert = cert.publicKey.export({ format: 'der', type: 'spki' });
  if (!fromKey.equals(fromCert)) {
    throw new PemError('PEM_KEY_MISMATCH', `${what} does not belong to the certificate ${cert.subject.replace(/\n/g, ', ')}`);
  }
}

/** PKCS#8 PEM of a private KeyObject. */
export function privateKeyToPkcs8Pem(key: KeyObject): string {
  return key.export({ format: 'pem', type: 'pkcs8' }) as string;
}
