/**
 * Label values meshlet exports are BOUNDED (Prometheus naming guide: no unbounded label
 * values). Identities and route names are bounded by the mesh and the policy, but a caller
 * can present many distinct identities over time (one per namespace/ServiceAccount of a big
 * cluster, or a hostile trust domain on a PERMISSIVE port), so every family caps the number
 * of distinct values it keeps for such a label; past the cap new values become "other".
 * Paths, IPs and client ports never become label values at all.
 */

export type Direction = 'inbound' | 'outbound';
export const DIRECTIONS: readonly Direction[] = ['inbound', 'outbound'];

/** Default cap on distinct peer identities (and route names) per metric family. */
export const DEFAULT_LABEL_CAP = 1000;
export const OVERFLOW_LABEL = 'other';

/** The peer of a plaintext caller (PERMISSIVE port). */
export const UNAUTHENTICATED_PEER = 'unauthenticated';
/** Outbound: a plaintext destination discovery says is an unmeshed in-cluster service (or outside the cluster). */
export const UNMESHED_PEER = 'unmeshed';
/** The peer is not known (e.g. an outbound connection before routing). */
export const UNKNOWN_PEER = 'unknown';

/**
 * Keeps at most `cap` distinct values of one label; later newcomers map to "other". Values
 * already admitted stay themselves, so a series never changes its labels half-way.
 */
export class CappedLabel {
  readonly cap: number;
  readonly #admitted = new Set<string>();
  #overflowed = 0;

  constructor(cap = DEFAULT_LABEL_CAP) {
    if (!Number.isInteger(cap) || cap < 1) throw new TypeError(`label cap must be a positive integer, got ${cap}`);
    this.cap = cap;
  }

  value(v: string): string {
    if (this.#admitted.has(v)) return v;
    if (this.#admitted.size >= this.cap) {
      this.#overflowed++;
      return OVERFLOW_LABEL;
    }
    this.#admitted.add(v);
    return v;
  }

  /**
   * Admits `v` if it is already in or the cap has room; false, without counting an overflow,
   * when it is full. For series made ahead of traffic (a policy's routes), which must never
   * take the slots real traffic needs as "other".
   */
  tryAdmit(v: string): boolean {
    if (this.#admitted.has(v)) return true;
    if (this.#admitted.size >= this.cap) return false;
    this.#admitted.add(v);
    return true;
  }

  /** How many lookups were folded into "other" (a sign the cap is too small, or an attack). */
  get overflowed(): number {
    return this.#overflowed;
  }
}

/** A verified SPIFFE ID, null for a plaintext caller, undefined when unknown. */
export function peerValue(peer: string | null | undefined): string {
  if (peer === null) return UNAUTHENTICATED_PEER;
  if (peer === undefined || peer === '') return UNKNOWN_PEER;
  return peer;
}

/** The method label: the RFC 9110 methods plus PATCH; anything else (a client's invention) is "other". */
export function methodValue(method: string): string {
  switch (method) {
    case 'GET':
    case 'HEAD':
    case 'POST':
    case 'PUT':
    case 'DELETE':
    case 'PATCH':
    case 'OPTIONS':
    case 'CONNECT':
    case 'TRACE':
      return method;
    default:
      return OVERFLOW_LABEL;
  }
}
export const METHOD_VALUES: readonly string[] = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'CONNECT', 'TRACE', OVERFLOW_LABEL];

const STATUS_CLASSES = ['none', '1xx', '2xx', '3xx', '4xx', '5xx'] as const;

/** 1xx…5xx; "none" when no response status exists (the connection died before a response head). */
export function statusClassValue(status: number): string {
  const c = Math.floor(status / 100);
  return c >= 1 && c <= 5 ? STATUS_CLASSES[c]! : 'none';
}

const GRPC_STATUS_VALUES: readonly string[] = Array.from({ length: 17 }, (_, i) => String(i));

/** gRPC status code 0…16 as a string; "none" for a plain HTTP request (or an out-of-range code). */
export function grpcStatusValue(code: number | null | undefined): string {
  if (code === null || code === undefined || !Number.isInteger(code) || code < 0 || code > 16) return 'none';
  return GRPC_STATUS_VALUES[code]!;
}

/**
 * Route label: the policy route name; "unmatched" when a server's default (or the mesh default)
 * decided — every family uses this one value; "none" when no policy ran (outbound, or a request
 * refused before the policy looked at it).
 */
export function routeValue(route: string | null | undefined): string {
  if (route === null) return 'unmatched';
  if (route === undefined || route === '') return 'none';
  return route;
}

export type AuthzResult = 'allow' | 'deny' | 'audit_would_deny' | 'none';
export const AUTHZ_RESULTS: readonly AuthzResult[] = ['allow', 'deny', 'audit_would_deny', 'none'];
