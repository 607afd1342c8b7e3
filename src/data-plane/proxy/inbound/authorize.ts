import type { ConnectionDirection, TrackedConnection } from '../connection-registry.ts';
import { isGrpcContentType, ProxyError } from '../http/errors.ts';
import type { DecideStep, Decision, Destination } from '../pipeline/request-pipeline.ts';
import type { Http1Head, StreamHead } from '../pipeline/request-head.ts';
import type { AuthorizationDecision, PathNormalizer, RequestAuthorizer, RequestFacts } from '../request-authorizer.ts';

/**
 * Where this step records each decision together with its request: the sidecar's decision log
 * (src/data-plane/sidecar/decision-log.ts, docs/decision-log.md). The step calls it only for
 * what the log may write, so with the log off (no `decisionLog`) or set to denials only, an
 * allowed request costs one test here.
 */
/**
 * Where an outbound decision's call was going, as the decision log writes it: `server` the SPIFFE
 * ID the destination must prove (exactly one known, from discovery or a configured pin), else
 * null (unmeshed, outside, or only a trust domain or several identities known); `destination`
 * the host the app named (or the address it dialled) and the port.
 */
export interface OutboundLogTarget {
  readonly server: string | null;
  readonly destination: string;
}

export interface RequestDecisionLog {
  /** False: allowed requests are never logged (MESHLET_DECISION_LOG=deny, or a sample of 0). */
  readonly logsAllows: boolean;
  /** A policy decision on an HTTP/1.1 request, an HTTP/2 stream (gRPC included) or an Upgrade request. */
  /** `outbound`: the destination of an outbound decision (the client side of the policy); absent inbound. */
  decided(direction: ConnectionDirection, head: Http1Head | StreamHead, facts: RequestFacts, decision: AuthorizationDecision, outbound?: OutboundLogTarget): void;
  /** A request refused before the policy: its path failed normalization (400 MESHLET_BAD_PATH). `rawPath` has no query. */
  pathRefused(direction: ConnectionDirection, head: Http1Head | StreamHead, peer: string | null, port: number, rawPath: string, reason: string): void;
}

/**
 * The authorizer as the sidecar hands it to the proxy: the policy, and — when the decision log
 * is on — the log its decisions go to. The inbound proxy passes it through unchanged; this step
 * reads `decisionLog` once, when it is made.
 */
export interface DecisionLoggingAuthorizer extends RequestAuthorizer {
  readonly decisionLog?: RequestDecisionLog | undefined;
}

/**
 * The inbound deciding step of one app port: path normalization, then the policy — the same
 * for HTTP/1.1 requests, HTTP/2 streams and Upgrade requests. The app receives the normalized
 * path the policy judged (and the query as sent). The authorizer is asked per request, so a
 * policy reload reaches open connections at their next request.
 */
export class AuthorizeStep implements DecideStep {
  readonly #appPort: number;
  readonly #authorizer: RequestAuthorizer;
  readonly #normalizer: PathNormalizer;
  readonly #destination: Destination;
  readonly #log: RequestDecisionLog | undefined;

  constructor(appPort: number, authorizer: RequestAuthorizer, normalizer: PathNormalizer, destination: Destination) {
    this.#appPort = appPort;
    this.#authorizer = authorizer;
    this.#normalizer = normalizer;
    this.#destination = destination;
    this.#log = (authorizer as DecisionLoggingAuthorizer).decisionLog;
  }

  decide(head: Http1Head | StreamHead, conn: TrackedConnection): Decision | ProxyError {
    const target = head.target;
    const q = target.indexOf('?');
    const rawPath = q === -1 ? target : target.slice(0, q);
    const normalized = this.#normalizer.normalize(rawPath);
    if (!normalized.ok) {
      this.#log?.pathRefused('inbound', head, conn.peerIdentity, this.#appPort, rawPath, normalized.reason);
      return new ProxyError('MESHLET_BAD_PATH', `request path refused: ${normalized.reason}`);
    }
    const peer = conn.peerIdentity;
    const facts: RequestFacts = { peer, port: this.#appPort, method: head.method, path: normalized.path, grpc: grpcFacts(head.contentType, normalized.path) };
    let decision: AuthorizationDecision;
    try {
      decision = this.#authorizer.authorize(facts);
    } catch (err) {
      return new ProxyError('MESHLET_INTERNAL', 'the policy could not decide', { cause: err });
    }
    const log = this.#log;
    // Denials and audit would-denies always reach the log (it rate-limits them); allows only when it samples them.
    if (log !== undefined && (decision.decision !== 'allow' || decision.wouldDeny === true || log.logsAllows)) log.decided('inbound', head, facts, decision);
    if (decision.decision !== 'allow') {
      return new ProxyError('MESHLET_DENIED', 'request denied by policy', { details: { route: decision.route, reason: decision.reason } });
    }
    return {
      destination: this.#destination,
      path: q === -1 ? normalized.path : normalized.path + target.slice(q),
      route: decision.route,
      authz: decision.wouldDeny === true ? 'audit_would_deny' : 'allow',
      identity: peer,
    };
  }
}

/** gRPC over HTTP/2 names `/<package.Service>/<Method>`; undefined for anything else. */
function grpcFacts(contentType: string | undefined, path: string): RequestFacts['grpc'] {
  if (!isGrpcContentType(contentType)) return undefined;
  const slash = path.indexOf('/', 1);
  if (slash === -1 || path.indexOf('/', slash + 1) !== -1) return undefined;
  return { service: path.slice(1, slash), method: path.slice(slash + 1) };
}
