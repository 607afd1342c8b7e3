/**
 * The two policy hooks the inbound proxy depends on. The real implementations live in
 * src/data-plane/policy (decide(), normalizePath()); the proxy sees only these shapes, so it can be
 * tested and benched without a policy store, and a policy reload is visible to the next
 * request on every open connection (the authorizer is asked per request).
 */

export interface RequestFacts {
  /** The caller's verified SPIFFE ID; null for a plaintext caller (PERMISSIVE ports). */
  readonly peer: string | null;
  /** The app port the request was meant for (the listener tells it; see InboundPort). */
  readonly port: number;
  readonly method: string;
  /** Normalized path, without the query string. */
  readonly path: string;
  readonly grpc?: { readonly service: string; readonly method: string };
}

export interface AuthorizationDecision {
  readonly decision: 'allow' | 'deny';
  /** Name of the route that matched, or null. */
  readonly route: string | null;
  readonly reason: string;
  /** Audit mode: allowed, but enforcement would deny (the `audit_would_deny` metrics value). */
  readonly wouldDeny?: boolean;
}

export interface RequestAuthorizer {
  authorize(facts: RequestFacts): AuthorizationDecision;
}

export type NormalizedPath = { readonly ok: true; readonly path: string } | { readonly ok: false; readonly reason: string };

/**
 * Canonicalizes the path part of a request target (no query string) before policy sees it.
 * The app receives the SAME normalized path the policy judged, so `/admin/../public` cannot
 * be allowed as one thing and served as another.
 */
export interface PathNormalizer {
  normalize(rawPath: string): NormalizedPath;
}
