import type { ConnectionDirection } from './connection-registry.ts';
import type { ProxyErrorCode } from './http/errors.ts';

/** What the policy did with a request: the `authz` label of request metrics. */
export type RequestAuthz = 'allow' | 'deny' | 'audit_would_deny' | 'none';

/**
 * Hooks for metrics and logs (wired by the sidecar). `refused` and `handshakeFailed` run only
 * on the unusual paths; `requestFinished` runs once per request, with positional arguments so
 * the call allocates nothing, and only when someone listens.
 */
export interface ProxyObserver {
  /**
   * A request (HTTP/1.1 exchange or HTTP/2 stream) ended: answered, refused or cut. `peer`:
   * inbound the caller, outbound the server (the identity the next hop's mTLS handshake
   * verified); null plaintext, undefined unknown (no next-hop connection). Bytes: HTTP/1.1, the
   * client connection's since the previous request on it ended, heads included (decrypted on
   * mTLS); HTTP/2, 0 (request-observation.ts).
   */
  requestFinished?(
    direction: ConnectionDirection,
    peer: string | null | undefined,
    route: string | null | undefined,
    method: string,
    status: number,
    grpcStatus: number | null,
    authz: RequestAuthz,
    durationSeconds: number,
    requestBytes: number,
    responseBytes: number,
  ): void;
  /** A request answered with an error from the catalog (or a connection refused by the parser). */
  refused?(direction: ConnectionDirection, code: ProxyErrorCode): void;
  /**
   * A connection whose TLS handshake or peer SVID verification failed: inbound a caller's,
   * outbound one the sidecar originated (a wrong server identity, an unknown CA, …).
   */
  handshakeFailed?(direction: ConnectionDirection, err: unknown): void;
}
