import { CertifyError } from '../errors.ts';

/**
 * What a token proves: the Kubernetes namespace and ServiceAccount it was issued for (and,
 * for a pod-bound projected token, the pod). The SPIFFE ID of the SVID is built from
 * `namespace` and `serviceAccount` alone.
 */
export interface ProvenServiceAccount {
  readonly namespace: string;
  readonly serviceAccount: string;
  /** The pod the token is bound to, when the token says so (for logs). */
  readonly podName?: string;
}

/**
 * One way to check a projected ServiceAccount token. Implementations throw CertifyError
 * with an IDENTITY_TOKEN_* code (UNAUTHENTICATED) when the token proves nothing, and
 * IDENTITY_AUTHENTICATOR_UNAVAILABLE when the authority cannot be asked right now.
 */
export interface TokenAuthenticator {
  /** "token-review" | "jwks" | "jwks+token-review": for logs. */
  readonly kind: string;
  authenticate(token: string): Promise<ProvenServiceAccount>;
  close?(): Promise<void>;
}

const SERVICE_ACCOUNT_USERNAME = /^system:serviceaccount:([^:]+):([^:]+)$/;

/** Takes apart the username Kubernetes gives a ServiceAccount: system:serviceaccount:<ns>:<sa>. */
export function parseServiceAccountUsername(username: unknown): { namespace: string; serviceAccount: string } {
  const m = typeof username === 'string' ? SERVICE_ACCOUNT_USERNAME.exec(username) : null;
  if (!m) {
    throw new CertifyError('IDENTITY_TOKEN_NOT_SERVICE_ACCOUNT', `the token does not belong to a ServiceAccount (user ${JSON.stringify(username)})`);
  }
  return { namespace: m[1]!, serviceAccount: m[2]! };
}

/**
 * Both authenticators must agree: the JWKS check first (local, cheap: garbage never costs an
 * API server round trip), then TokenReview, which also knows what the signature cannot tell
 * — that the pod a bound token names still exists.
 */
export class AllOfAuthenticators implements TokenAuthenticator {
  readonly kind: string;
  readonly #all: readonly TokenAuthenticator[];

  constructor(all: readonly TokenAuthenticator[]) {
    if (all.length === 0) throw new RangeError('AllOfAuthenticators needs at least one authenticator');
    this.#all = all;
    this.kind = all.map((a) => a.kind).join('+');
  }

  async authenticate(token: string): Promise<ProvenServiceAccount> {
    let first: ProvenServiceAccount | undefined;
    for (const a of this.#all) {
      const proven = await a.authenticate(token);
      if (first === undefined) first = proven;
      else if (proven.namespace !== first.namespace || proven.serviceAccount !== first.serviceAccount) {
        throw new CertifyError(
          'IDENTITY_TOKEN_IDENTITY_MISMATCH',
          `the authenticators disagree on the token's ServiceAccount (${first.namespace}/${first.serviceAccount} vs ${proven.namespace}/${proven.serviceAccount})`,
        );
      }
    }
    return first!;
  }

  async close(): Promise<void> {
    await Promise.all(this.#all.map((a) => a.close?.()));
  }
}
