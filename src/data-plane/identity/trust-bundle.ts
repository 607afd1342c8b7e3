import { X509Certificate } from 'node:crypto';
import { MeshletError } from '../../common/errors/meshlet-error.ts';
import { derToPem, parseCertificatesPem, pemCertificatesToDer } from './pem.ts';
import { validateTrustDomain } from '../../common/identity/spiffe-id.ts';
import type { TrustBundles } from './svid.ts';

/**
 * The SPIFFE bundle format (SPIFFE_Trust_Domain_and_Bundle.md §4): a JWK Set whose X.509
 * authorities are keys with `use: "x509-svid"` and an `x5c` of exactly one base64 DER CA
 * certificate, plus `spiffe_sequence` and `spiffe_refresh_hint`. Meshlet keeps bundles as PEM
 * internally (what TLS and the verifier take); this converts both ways, and builds the
 * per-trust-domain map the verifier uses.
 */
export class TrustBundleError extends MeshletError {
  constructor(code: TrustBundleErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
  }
}

export type TrustBundleErrorCode =
  | 'BUNDLE_MALFORMED_JSON'
  | 'BUNDLE_NOT_A_JWK_SET'
  | 'BUNDLE_BAD_X509_AUTHORITY'
  | 'BUNDLE_BAD_SEQUENCE'
  | 'BUNDLE_BAD_REFRESH_HINT'
  | 'BUNDLE_BAD_TRUST_DOMAIN'
  | 'BUNDLE_BAD_PEM';

export interface SpiffeBundle {
  /** The X.509 authorities as concatenated PEM; '' when the set has none (all revoked). */
  readonly x509AuthoritiesPem: string;
  readonly sequence?: number;
  readonly refreshHintSeconds?: number;
}

/** The JSON document, as served by a SPIFFE bundle endpoint. */
export interface SpiffeBundleDocument {
  keys: Array<Record<string, unknown> & { use: string; kty: string; x5c?: string[] }>;
  spiffe_sequence?: number;
  spiffe_refresh_hint?: number;
}

const X509_SVID_USE = 'x509-svid';

/** Parses a SPIFFE bundle (JSON text or the parsed object). JWT authorities and unknown `use` values are skipped. */
export function parseSpiffeBundle(input: string | unknown): SpiffeBundle {
  let doc: unknown = input;
  if (typeof input === 'string') {
    try {
      doc = JSON.parse(input);
    } catch (err) {
      throw new TrustBundleError('BUNDLE_MALFORMED_JSON', `SPIFFE bundle is not valid JSON: ${(err as Error).message}`, { cause: err });
    }
  }
  if (typeof doc !== 'object' || doc === null || !Array.isArray((doc as { keys?: unknown }).keys)) {
    throw new TrustBundleError('BUNDLE_NOT_A_JWK_SET', 'SPIFFE bundle must be a JWK Set: an object with a "keys" array');
  }
  const set = doc as { keys: unknown[]; spiffe_sequence?: unknown; spiffe_refresh_hint?: unknown };
  const pems: string[] = [];
  set.keys.forEach((key, i) => {
    if (typeof key !== 'object' || key === null) throw new TrustBundleError('BUNDLE_NOT_A_JWK_SET', `keys[${i}] is not an object`);
    const k = key as { use?: unknown; x5c?: unknown };
    if (k.use !== X509_SVID_USE) return;
    if (!Array.isArray(k.x5c) || k.x5c.length !== 1 || typeof k.x5c[0] !== 'string') {
      throw new TrustBundleError('BUNDLE_BAD_X509_AUTHORITY', `keys[${i}] (use "x509-svid") must have an "x5c" of exactly one base64 DER certificate`);
    }
    const der = Buffer.from(k.x5c[0], 'base64');
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(der);
    } catch (err) {
      throw new TrustBundleError('BUNDLE_BAD_X509_AUTHORITY', `keys[${i}].x5c[0] is not a DER X.509 certificate`, { cause: err });
    }
    pems.push(derToPem(cert.raw));
  });
  const sequence = optionalInteger(set.spiffe_sequence, 'spiffe_sequence', 'BUNDLE_BAD_SEQUENCE');
  const refreshHintSeconds = optionalInteger(set.spiffe_refresh_hint, 'spiffe_refresh_hint', 'BUNDLE_BAD_REFRESH_HINT');
  return {
    x509AuthoritiesPem: pems.join(''),
    ...(sequence === undefined ? {} : { sequence }),
    ...(refreshHintSeconds === undefined ? {} : { refreshHintSeconds }),
  };
}

function optionalInteger(v: unknown, name: string, code: TrustBundleErrorCode): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new TrustBundleError(code, `${name} must be a non-negative integer, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** Produces the SPIFFE bundle document for the CA certificates in `pem`. */
export function toSpiffeBundle(pem: string, opts: { sequence?: number; refreshHintSeconds?: number } = {}): SpiffeBundleDocument {
  const certs = pemCertificatesToDer(pem).length === 0 ? [] : parsePem(pem, 'bundle');
  const doc: SpiffeBundleDocument = {
    keys: certs.map((cert) => {
      // A JWK carries the key itself too (kty is required by RFC 7517); x5c carries the certificate.
      const jwk = cert.publicKey.export({ format: 'jwk' }) as Record<string, unknown> & { kty: string };
      return { use: X509_SVID_USE, ...jwk, x5c: [cert.raw.toString('base64')] };
    }),
  };
  if (opts.sequence !== undefined) doc.spiffe_sequence = opts.sequence;
  if (opts.refreshHintSeconds !== undefined) doc.spiffe_refresh_hint = opts.refreshHintSeconds;
  return doc;
}

function parsePem(pem: string, what: string): X509Certificate[] {
  try {
    return parseCertificatesPem(pem, what);
  } catch (err) {
    throw new TrustBundleError('BUNDLE_BAD_PEM', (err as Error).message, { cause: err });
  }
}

/**
 * Builds the verifier's trust-domain -> PEM map, checking every trust domain name and every
 * certificate up front (a bad bundle is a configuration error, not a per-handshake one).
 */
export function buildTrustBundles(entries: Record<string, string> | Iterable<readonly [string, string]>): TrustBundles {
  const pairs = Symbol.iterator in entries ? [...(entries as Iterable<readonly [string, string]>)] : Object.entries(entries);
  const map = new Map<string, string>();
  for (const [td, pem] of pairs) {
    try {
      validateTrustDomain(td);
    } catch (err) {
      throw new TrustBundleError('BUNDLE_BAD_TRUST_DOMAIN', `trust bundle key ${JSON.stringify(td)}: ${(err as Error).message}`, { cause: err });
    }
    // Normalised (one PEM block per CA, no stray text), so equal bundles compare equal as strings.
    const normalised = pemCertificatesToDer(pem).length === 0 ? '' : parsePem(pem, `trust bundle of "${td}"`).map((c) => derToPem(c.raw)).join('');
    map.set(td, (map.get(td) ?? '') + normalised);
  }
  return map;
}
