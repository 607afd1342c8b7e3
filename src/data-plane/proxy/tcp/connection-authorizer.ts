import type { AuthorizationDecision } from '../request-authorizer.ts';

/**
 * What an opaque TCP port asks the policy: one decision per CONNECTION, from the only facts an
 * L4 stream has — who called and which app port. There is no method and no path; the policy
 * engine (src/data-plane/policy decide()) answers a `tcp` port from its port-wide route alone, so the
 * sidecar's PolicyAuthorizer satisfies this interface as it is.
 */
export interface ConnectionFacts {
  /** The caller's verified SPIFFE ID (opaque ports are always mTLS: never null here). */
  readonly peer: string;
  readonly port: number;
}

export interface ConnectionAuthorizer {
  authorize(facts: ConnectionFacts): AuthorizationDecision;
  /**
   * An open connection's decision again, with the policy in force now (after a reload): null
   * while it is still allowed (nothing counted: it is not a new connection); otherwise the
   * denial, counted like a first decision. Optional: without it, open connections stay open.
   */
  reconsider?(facts: ConnectionFacts): AuthorizationDecision | null;
}
