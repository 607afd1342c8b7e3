import type { TrackedConnection } from '../connection-registry.ts';
import { isGrpcContentType, ProxyError } from '../http/errors.ts';
import type { DecideStep, Decision, Destination } from '../pipeline/request-pipeline.ts';
import type { Http1Head, StreamHead } from '../pipeline/request-head.ts';
import type { AuthorizationDecision, PathNormalizer, RequestAuthorizer, RequestFacts } from '../request-authorizer.ts';

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

  constructor(appPort: number, authorizer: RequestAuthorizer, normalizer: PathNormalizer, destination: Destination) {
    this.#appPort = appPort;
    this.#authorizer = authorizer;
    this.#normalizer = normalizer;
    this.#destination = destination;
  }

  decide(head: Http1Head | StreamHead, conn: TrackedConnection): Decision | ProxyError {
    const target = head.target;
    const q = target.indexOf('?');
    const normalized = this.#normalizer.normalize(q === -1 ? target : target.slice(0, q));
    if (!normalized.ok) return new ProxyError('MESHLET_BAD_PATH', `request path refused: ${normalized.reason}`);
    const peer = conn.peerIdentity;
    const facts: RequestFacts = { peer, port: this.#appPort, method: head.method, path: normalized.path, grpc: grpcFacts(head.contentType, normalized.path) };
    let decision: AuthorizationDecision;
    try {
      decision = this.#authorizer.authorize(facts);
    } catch (err) {
      return new ProxyError('MESHLET_INTERNAL', 'the policy could not decide', { cause: err });
    }
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
