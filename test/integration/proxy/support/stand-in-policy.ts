import type { AuthorizationDecision, PathNormalizer, RequestAuthorizer, RequestFacts } from '../../../../src/data-plane/proxy/request-authorizer.ts';

/**
 * Stand-ins for the real policy engine (src/data-plane/policy), for the proxy's tests and the hop bench:
 * allow every authenticated caller except on paths under a denied prefix.
 */
export class DenyByPathAuthorizer implements RequestAuthorizer {
  readonly #deniedPrefixes: readonly string[];
  readonly seen: RequestFacts[] | null;
  constructor(deniedPrefixes: readonly string[] = [], opts: { record?: boolean } = {}) {
    this.#deniedPrefixes = deniedPrefixes;
    this.seen = opts.record ? [] : null;
  }
  authorize(facts: RequestFacts): AuthorizationDecision {
    this.seen?.push(facts);
    if (facts.peer === null) return { decision: 'deny', route: null, reason: 'unauthenticated caller' };
    for (const prefix of this.#deniedPrefixes) {
      if (facts.path.startsWith(prefix)) return { decision: 'deny', route: `deny-${prefix}`, reason: `${prefix} is denied to every caller` };
    }
    return { decision: 'allow', route: 'allow-rest', reason: 'allowed' };
  }
}

/** Refuses dot segments and anything not starting with "/"; otherwise leaves the path as is. */
export const strictPathNormalizer: PathNormalizer = {
  normalize(rawPath) {
    if (!rawPath.startsWith('/')) return { ok: false, reason: 'the path must start with "/"' };
    if (/(^|\/)\.\.?(\/|$)/.test(rawPath)) return { ok: false, reason: 'dot segments are not allowed' };
    return { ok: true, path: rawPath };
  },
};
