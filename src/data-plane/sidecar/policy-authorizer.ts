import { decide, normalizePath, type PolicyStore } from '../policy/index.ts';
import type { Decision } from '../policy/types.ts';
import type { NormalizedPath, PathNormalizer, RequestAuthorizer, RequestFacts } from '../proxy/request-authorizer.ts';
import type { ConnectionAuthorizer, ConnectionFacts } from '../proxy/tcp/connection-authorizer.ts';

/** Who wants to hear about decisions (metrics, denial logs); called after every decision. */
export type DecisionListener = (facts: RequestFacts | ConnectionFacts, decision: Decision) => void;

/**
 * The proxy's policy hooks, backed by the live PolicyStore: `store.current()` is read on
 * every request, so a reload reaches connections that are already open (issue 3), and the
 * decision is the same pure `decide()` that `meshlet policy explain` runs.
 */
export class PolicyAuthorizer implements RequestAuthorizer, ConnectionAuthorizer, PathNormalizer {
  readonly #store: PolicyStore;
  readonly #onDecision: DecisionListener | undefined;

  constructor(store: PolicyStore, onDecision?: DecisionListener) {
    this.#store = store;
    this.#onDecision = onDecision;
  }

  /** HTTP and gRPC requests, and opaque TCP connections (caller and port only). */
  authorize(facts: RequestFacts | ConnectionFacts): Decision {
    const decision = decide(this.#store.current(), facts);
    this.#onDecision?.(facts, decision);
    return decision;
  }

  /** An open opaque connection after a reload (DecidedConnections): still allowed is null and uncounted; a denial is observed as any. */
  reconsider(facts: ConnectionFacts): Decision | null {
    const decision = decide(this.#store.current(), facts);
    if (decision.decision === 'allow') return null;
    this.#onDecision?.(facts, decision);
    return decision;
  }

  normalize(rawPath: string): NormalizedPath {
    const n = normalizePath(rawPath);
    return n.ok ? { ok: true, path: n.path } : { ok: false, reason: n.reason };
  }
}
