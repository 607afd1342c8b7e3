import { MeshletError } from '../errors/meshlet-error.ts';

/**
 * SPIFFE IDs, parsed exactly as the SPIFFE-ID standard says (and as go-spiffe enforces):
 * `spiffe://<trust-domain>[/<path>]`, lowercase trust domain of [a-z0-9.-_], path segments of
 * [a-zA-Z0-9.-_] with no empty, "." or ".." segment, no trailing slash, no percent-encoding,
 * no query, fragment, port or userinfo, 2048 bytes at most.
 */
export class SpiffeIdError extends MeshletError {
  constructor(code: SpiffeIdErrorCode, message: string) {
    super(code, message);
  }
}

export type SpiffeIdErrorCode =
  | 'SPIFFE_ID_EMPTY'
  | 'SPIFFE_ID_TOO_LONG'
  | 'SPIFFE_ID_WRONG_SCHEME'
  | 'SPIFFE_ID_MISSING_TRUST_DOMAIN'
  | 'SPIFFE_ID_BAD_TRUST_DOMAIN_CHAR'
  | 'SPIFFE_ID_TRUST_DOMAIN_TOO_LONG'
  | 'SPIFFE_ID_EMPTY_SEGMENT'
  | 'SPIFFE_ID_DOT_SEGMENT'
  | 'SPIFFE_ID_TRAILING_SLASH'
  | 'SPIFFE_ID_BAD_PATH_CHAR'
  | 'SPIFFE_ID_NOT_WORKLOAD';

/** The mesh's trust domain unless configured otherwise (MESHLET_TRUST_DOMAIN), as Kubernetes' cluster domain. */
export const DEFAULT_TRUST_DOMAIN = 'cluster.local';

export const MAX_SPIFFE_ID_BYTES = 2048;
export const MAX_TRUST_DOMAIN_BYTES = 255;

const TRUST_DOMAIN_CHAR = /^[a-z0-9._-]$/;
const PATH_CHAR = /^[a-zA-Z0-9._-]$/;

export interface SpiffeId {
  readonly trustDomain: string;
  /** "" for a trust-domain ID, else starts with "/". */
  readonly path: string;
  /** The canonical string form. */
  readonly id: string;
}

function fail(code: SpiffeIdErrorCode, input: string, why: string): never {
  throw new SpiffeIdError(code, `invalid SPIFFE ID ${JSON.stringify(input.length > 80 ? input.slice(0, 80) + '…' : input)}: ${why}`);
}

export function validateTrustDomain(td: string, input = td): void {
  if (td === '') fail('SPIFFE_ID_MISSING_TRUST_DOMAIN', input, 'trust domain is missing');
  if (Buffer.byteLength(td) > MAX_TRUST_DOMAIN_BYTES) {
    fail('SPIFFE_ID_TRUST_DOMAIN_TOO_LONG', input, `trust domain is longer than ${MAX_TRUST_DOMAIN_BYTES} bytes`);
  }
  for (const ch of td) {
    if (!TRUST_DOMAIN_CHAR.test(ch)) {
      const hint = ch === ':' ? ' (a port is not allowed)' : ch === '@' ? ' (userinfo is not allowed)' : /[A-Z]/.test(ch) ? ' (must be lowercase)' : '';
      fail('SPIFFE_ID_BAD_TRUST_DOMAIN_CHAR', input, `trust domain has the character ${JSON.stringify(ch)}${hint}; only a-z 0-9 . - _ are allowed`);
    }
  }
}

/** Parses and validates a SPIFFE ID; throws SpiffeIdError with a precise reason. */
export function parseSpiffeId(input: string): SpiffeId {
  if (input === '') fail('SPIFFE_ID_EMPTY', input, 'it is empty');
  if (Buffer.byteLength(input) > MAX_SPIFFE_ID_BYTES) fail('SPIFFE_ID_TOO_LONG', input, `it is longer than ${MAX_SPIFFE_ID_BYTES} bytes`);
  // The scheme must be exactly lowercase "spiffe" (go-spiffe rejects "SPIFFE://").
  if (!input.startsWith('spiffe://')) fail('SPIFFE_ID_WRONG_SCHEME', input, 'the scheme must be exactly "spiffe://"');
  const rest = input.slice('spiffe://'.length);
  const slash = rest.indexOf('/');
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? '' : rest.slice(slash);
  validateTrustDomain(trustDomain, input);
  validatePath(path, input);
  return Object.freeze({ trustDomain, path, id: input });
}

function validatePath(path: string, input: string): void {
  if (path === '') return;
  const segments = path.slice(1).split('/');
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i]!;
    if (seg === '') {
      if (i === segments.length - 1) fail('SPIFFE_ID_TRAILING_SLASH', input, 'the path has a trailing "/"');
      fail('SPIFFE_ID_EMPTY_SEGMENT', input, 'the path has an empty segment ("//")');
    }
    if (seg === '.' || seg === '..') fail('SPIFFE_ID_DOT_SEGMENT', input, `the path has a "${seg}" segment`);
    for (const ch of seg) {
      if (!PATH_CHAR.test(ch)) {
        const hint = ch === '%' ? ' (percent-encoding is not allowed)' : ch === '?' ? ' (a query is not allowed)' : ch === '#' ? ' (a fragment is not allowed)' : '';
        fail('SPIFFE_ID_BAD_PATH_CHAR', input, `the path has the character ${JSON.stringify(ch)}${hint}; only a-z A-Z 0-9 . - _ are allowed`);
      }
    }
  }
}

/** True when `input` is a valid SPIFFE ID; never throws. */
export function isSpiffeId(input: string): boolean {
  try {
    parseSpiffeId(input);
    return true;
  } catch {
    return false;
  }
}

/** The identity meshlet gives a workload: spiffe://<td>/ns/<namespace>/sa/<serviceaccount>. */
export function workloadSpiffeId(trustDomain: string, namespace: string, serviceAccount: string): SpiffeId {
  const id = parseSpiffeId(`spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`);
  // A "/" inside a name would make a valid ID of the wrong shape (…/ns/a/b/sa/c): the
  // round trip refuses it.
  parseWorkloadSpiffeId(id);
  return id;
}

export interface WorkloadIdentity {
  trustDomain: string;
  namespace: string;
  serviceAccount: string;
}

/** Takes a workload ID apart again; throws SPIFFE_ID_NOT_WORKLOAD for any other shape. */
export function parseWorkloadSpiffeId(input: string | SpiffeId): WorkloadIdentity {
  const id = typeof input === 'string' ? parseSpiffeId(input) : input;
  const parts = id.path.split('/');
  if (parts.length !== 5 || parts[1] !== 'ns' || parts[3] !== 'sa') {
    fail('SPIFFE_ID_NOT_WORKLOAD', id.id, 'it is not of the form spiffe://<trust-domain>/ns/<namespace>/sa/<serviceaccount>');
  }
  return { trustDomain: id.trustDomain, namespace: parts[2]!, serviceAccount: parts[4]! };
}
