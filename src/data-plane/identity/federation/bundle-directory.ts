import { createHash } from 'node:crypto';
import { readdir, readFile, readlink, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { MeshletError } from '../../../common/errors/meshlet-error.ts';
import { validateTrustDomain } from '../../../common/identity/spiffe-id.ts';
import { parseSpiffeBundle } from '../trust-bundle.ts';

/**
 * The federation directory (MESHLET_FEDERATION_BUNDLES, docs/identity-sources.md "Federation"):
 * a mounted ConfigMap with one key per foreign trust domain, named after it (optionally with
 * `.json`), whose value is that domain's SPIFFE bundle (a JWK Set). This module reads one
 * consistent generation of it and judges each file against what is loaded; the watching lives
 * in federated-bundles.ts.
 */
export class FederationError extends MeshletError {
  readonly reason: FederationRejectReason;
  /** The file refused (absolute path), or the directory itself for `unreadable` directory errors. */
  readonly file: string;
  /** The trust domain the file names, when its name is one. */
  readonly trustDomain: string | undefined;

  constructor(code: FederationErrorCode, file: string, trustDomain: string | undefined, message: string, options?: ErrorOptions) {
    super(code, message, options);
    this.reason = FEDERATION_REASON_OF_CODE[code];
    this.file = file;
    this.trustDomain = trustDomain;
  }
}

export type FederationErrorCode =
  | 'FEDERATION_BUNDLE_INVALID'
  | 'FEDERATION_BAD_TRUST_DOMAIN'
  | 'FEDERATION_OWN_TRUST_DOMAIN'
  | 'FEDERATION_NO_X509_AUTHORITIES'
  | 'FEDERATION_ROLLBACK'
  | 'FEDERATION_DUPLICATE_TRUST_DOMAIN'
  | 'FEDERATION_BUNDLE_TOO_LARGE'
  | 'FEDERATION_UNREADABLE';

/** The `reason` label of meshlet_federation_bundle_errors_total for each code: one each, bounded. */
export const FEDERATION_REASON_OF_CODE = {
  FEDERATION_BUNDLE_INVALID: 'invalid_bundle',
  FEDERATION_BAD_TRUST_DOMAIN: 'bad_trust_domain',
  FEDERATION_OWN_TRUST_DOMAIN: 'own_trust_domain',
  FEDERATION_NO_X509_AUTHORITIES: 'no_x509_authorities',
  FEDERATION_ROLLBACK: 'rollback',
  FEDERATION_DUPLICATE_TRUST_DOMAIN: 'duplicate_trust_domain',
  FEDERATION_BUNDLE_TOO_LARGE: 'too_large',
  FEDERATION_UNREADABLE: 'unreadable',
} as const satisfies Record<FederationErrorCode, string>;
export const FEDERATION_REJECT_REASONS = Object.values(FEDERATION_REASON_OF_CODE);
export type FederationRejectReason = (typeof FEDERATION_REASON_OF_CODE)[FederationErrorCode];

/**
 * A ConfigMap holds at most 1 MiB in all, so a larger file cannot be a bundle kubelet wrote;
 * refusing it before reading keeps a stray file from costing the sidecar its memory.
 */
export const MAX_BUNDLE_FILE_BYTES = 1024 * 1024;

/** The file name suffix a key may carry (`partner.example.json`); the rest names the trust domain. */
export const BUNDLE_FILE_SUFFIX = '.json';

/** One federated trust domain's bundle as loaded. */
export interface FederatedBundle {
  readonly trustDomain: string;
  /** Its X.509 authorities, PEM (normalised by parseSpiffeBundle: one block per CA). */
  readonly pem: string;
  /** spiffe_sequence, when the bundle has one. */
  readonly sequence: number | undefined;
  /** The file it came from. */
  readonly file: string;
}

/** One file of the directory as read: its name, and its bytes or why they could not be had. */
export interface BundleFileRead {
  readonly name: string;
  readonly path: string;
  /** sha256 of the bytes, or of the failure: a poll that finds the same thing does nothing. */
  readonly digest: string;
  readonly text?: string;
  readonly failure?: FederationError;
}

/** One consistent read of the directory (every file from the same `..data` generation). */
export interface DirectoryRead {
  readonly files: readonly BundleFileRead[];
  /** Names and digests of every file, sorted: equal fingerprints mean nothing changed. */
  readonly fingerprint: string;
}

/** A `..data` swap landing during this many consecutive reads means something is wrong; wait for the next change. */
const MAX_CONSECUTIVE_REREADS = 5;

/**
 * Reads every key of `dir`. Kubelet's internals (`..data`, `..<timestamp>`) are skipped; keys
 * are followed through their symlinks. When `..data` moved while reading, the read is done
 * again (as the files source does), so one generation's file is never judged with another's.
 * Throws FederationError (`unreadable`) when the directory itself cannot be listed.
 */
export async function readBundleDirectory(dir: string): Promise<DirectoryRead> {
  for (let attempt = 1; ; attempt++) {
    const before = await generation(dir);
    const files = await readOnce(dir);
    if ((await generation(dir)) === before || attempt >= MAX_CONSECUTIVE_REREADS) {
      return { files, fingerprint: files.map((f) => `${f.name}\0${f.digest}`).join('\n') };
    }
  }
}

async function generation(dir: string): Promise<string> {
  return readlink(join(dir, '..data')).catch(() => '');
}

async function readOnce(dir: string): Promise<BundleFileRead[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new FederationError('FEDERATION_UNREADABLE', dir, undefined, `the federation directory ${dir} cannot be listed: ${e.code ?? e.message}`, { cause: err });
  }
  names = names.filter((n) => !n.startsWith('..')).sort();
  return Promise.all(names.map((name) => readOne(dir, name)));
}

async function readOne(dir: string, name: string): Promise<BundleFileRead> {
  const path = join(dir, name);
  const failed = (failure: FederationError): BundleFileRead => ({ name, path, failure, digest: sha256(`${failure.code}\0${failure.message}`) });
  const td = trustDomainOfFileName(name);
  try {
    const st = await stat(path);
    if (!st.isFile()) return failed(new FederationError('FEDERATION_UNREADABLE', path, td, `${path} is not a regular file`));
    if (st.size > MAX_BUNDLE_FILE_BYTES) {
      return failed(new FederationError('FEDERATION_BUNDLE_TOO_LARGE', path, td, `${path} is ${st.size} bytes; a federated bundle is at most ${MAX_BUNDLE_FILE_BYTES} bytes (a ConfigMap's limit)`));
    }
    const text = await readFile(path, 'utf8');
    return { name, path, text, digest: sha256(text) };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return failed(new FederationError('FEDERATION_UNREADABLE', path, td, `${path} cannot be read: ${e.code ?? e.message}`, { cause: err }));
  }
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** The trust domain a key names: the file name without its `.json` suffix. */
export function trustDomainOfFileName(name: string): string {
  return name.endsWith(BUNDLE_FILE_SUFFIX) ? name.slice(0, -BUNDLE_FILE_SUFFIX.length) : name;
}

/** What judging a directory read against the loaded bundles gives. */
export interface Judgement {
  /** Every federated trust domain to trust from now on (accepted now, or kept from before). */
  readonly bundles: ReadonlyMap<string, FederatedBundle>;
  /** Files refused, each with its precise reason; their domain keeps its last good bundle. */
  readonly rejected: readonly FederationError[];
}

/**
 * Judges each file of `read` against `loaded` (what is trusted now). A file is taken only when
 * its name is a valid trust domain other than `ownTrustDomain` (which federation never
 * overrides), it is the only file for that domain, it parses as a SPIFFE bundle with at least
 * one X.509 authority, and its spiffe_sequence is not lower than the loaded one's. A refused
 * file's domain keeps its loaded bundle; a domain with no file any more is dropped.
 */
export function judgeBundleDirectory(read: DirectoryRead, loaded: ReadonlyMap<string, FederatedBundle>, ownTrustDomain: string): Judgement {
  const rejected: FederationError[] = [];
  const next = new Map<string, FederatedBundle>();
  const byDomain = new Map<string, BundleFileRead[]>();
  for (const file of read.files) {
    const td = trustDomainOfFileName(file.name);
    byDomain.set(td, [...(byDomain.get(td) ?? []), file]);
  }
  for (const [td, files] of byDomain) {
    const keep = () => {
      const previous = loaded.get(td);
      if (previous !== undefined) next.set(td, previous);
    };
    if (files.length > 1) {
      const names = files.map((f) => f.name).join(' and ');
      for (const f of files) rejected.push(new FederationError('FEDERATION_DUPLICATE_TRUST_DOMAIN', f.path, td, `${f.path}: trust domain "${td}" is named by two keys (${names}); keep one`));
      keep();
      continue;
    }
    const file = files[0]!;
    const verdict = judgeFile(file, td, loaded.get(td), ownTrustDomain);
    if (verdict instanceof FederationError) {
      rejected.push(verdict);
      // Never for the own trust domain or a name that is no trust domain: neither is ever loaded.
      keep();
    } else {
      next.set(td, verdict);
    }
  }
  return { bundles: next, rejected };
}

function judgeFile(file: BundleFileRead, td: string, previous: FederatedBundle | undefined, ownTrustDomain: string): FederatedBundle | FederationError {
  if (file.failure !== undefined) return file.failure;
  const path = file.path;
  try {
    validateTrustDomain(td, file.name);
  } catch (err) {
    return new FederationError('FEDERATION_BAD_TRUST_DOMAIN', path, undefined, `${path}: the key "${file.name}" does not name a trust domain: ${(err as Error).message}`, { cause: err });
  }
  if (td === ownTrustDomain) {
    return new FederationError('FEDERATION_OWN_TRUST_DOMAIN', path, td, `${path}: "${td}" is this mesh's own trust domain, whose bundle comes from the identity source and is never replaced by federation`);
  }
  // "cluster.local." and ".cluster.local" are other trust domains to the SPIFFE ID grammar, but the
  // same DNS name to a reader: a foreign CA minting look-alikes of the own domain is refused too.
  if (withoutOuterDots(td) === withoutOuterDots(ownTrustDomain)) {
    return new FederationError('FEDERATION_OWN_TRUST_DOMAIN', path, td, `${path}: "${td}" is this mesh's own trust domain "${ownTrustDomain}" with a leading or trailing ".": a look-alike of the own domain is never federated`);
  }
  let bundle;
  try {
    bundle = parseSpiffeBundle(file.text!);
  } catch (err) {
    return new FederationError('FEDERATION_BUNDLE_INVALID', path, td, `${path}: not a valid SPIFFE bundle: ${(err as Error).message}`, { cause: err });
  }
  if (bundle.x509AuthoritiesPem === '') {
    return new FederationError('FEDERATION_NO_X509_AUTHORITIES', path, td, `${path}: the bundle of "${td}" has no X.509 authority (no key with "use": "x509-svid"); to stop trusting "${td}", delete its key instead`);
  }
  if (previous?.sequence !== undefined && (bundle.sequence === undefined || bundle.sequence < previous.sequence)) {
    const got = bundle.sequence === undefined ? 'no spiffe_sequence' : `spiffe_sequence ${bundle.sequence}`;
    return new FederationError('FEDERATION_ROLLBACK', path, td, `${path}: ${got} is older than the loaded bundle of "${td}" (spiffe_sequence ${previous.sequence}); a rollback is refused`);
  }
  return Object.freeze({ trustDomain: td, pem: bundle.x509AuthoritiesPem, sequence: bundle.sequence, file: path });
}

function withoutOuterDots(name: string): string {
  return name.replace(/^\.+|\.+$/g, '');
}
