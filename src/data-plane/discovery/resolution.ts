/**
 * What the sidecar knows about one destination (host, port), from the identity service's
 * `meshlet.discovery.v1.Discovery/Resolve` (docs/discovery.md) — or why it does not know.
 * The first five kinds are the control plane's answers, checked and in the sidecar's own
 * shape; `unavailable` is the sidecar's: the call failed, or its answer was unusable.
 *
 * Plain data, no gRPC: the destination cache, `decide` and their tests use it without loading
 * grpc-js.
 */

/** The port's declared protocol (docs/protocol-detection.md `protocolFromServicePort`). */
export type DestinationProtocol = 'http' | 'h2c' | 'grpc' | 'tls' | 'tcp' | 'server-first' | 'detect';
export const DESTINATION_PROTOCOLS: readonly DestinationProtocol[] = ['http', 'h2c', 'grpc', 'tls', 'tcp', 'server-first', 'detect'];

export interface Destination {
  /** An IP address (IPv4, IPv6, bracketed, IPv4-mapped) or a DNS name. */
  host: string;
  port: number;
}

export interface ResolvedEndpoint {
  address: string;
  port: number;
  /** The pod's exact SPIFFE ID when it is meshed; undefined when it is not. */
  identity: string | undefined;
  ready: boolean;
}

/** Every endpoint is a meshed pod: mTLS, the server must be one of `identities`. */
export interface MeshedResolution {
  kind: 'meshed';
  identities: readonly string[];
  protocol: DestinationProtocol;
  endpoints: readonly ResolvedEndpoint[];
  endpointsTruncated: boolean;
  service: string;
  reason: string;
}

/** A Service with meshed and unmeshed endpoints: dial endpoints, never the Service address. */
export interface MixedResolution {
  kind: 'mixed';
  identities: readonly string[];
  protocol: DestinationProtocol;
  endpoints: readonly ResolvedEndpoint[];
  endpointsTruncated: boolean;
  service: string;
  reason: string;
}

/** In the cluster, every endpoint known and none meshed. */
export interface UnmeshedResolution {
  kind: 'unmeshed';
  protocol: DestinationProtocol;
  endpoints: readonly ResolvedEndpoint[];
  endpointsTruncated: boolean;
  service: string;
  reason: string;
}

/** Outside the cluster, or an ExternalName Service (`externalName` set). */
export interface ExternalResolution {
  kind: 'external';
  externalName: string;
  reason: string;
}

/** In the cluster but not known (yet), or not usable: fail closed. */
export interface UnknownResolution {
  kind: 'unknown';
  reason: string;
}

/**
 * Why the sidecar has no answer. `reason` is a label (bounded set, for metrics and logs):
 * the service's refusal reason when it gave one (`unauthenticated`, `not_workload`,
 * `rate_limited`, `malformed_request`, `not_synced`, `stale`, `internal`), else `unreachable`
 * (UNAVAILABLE without one: no connection), `deadline`, `no_svid_roots` (no roots to verify
 * the identity service with), `bad_answer` (an answer the sidecar cannot use), `invalid_host`,
 * or `grpc_<status>` for any other status.
 */
export interface UnavailableResolution {
  kind: 'unavailable';
  reason: string;
  /** Human words for logs: the status and the service's message. */
  detail: string;
  /**
   * Whether the destination may be inside the cluster (the cluster CIDRs, a cluster name:
   * ClusterScope): decides refusal (inside) or the egress rules (outside). Set by the cache.
   */
  inCluster: boolean;
}

export type Resolution = MeshedResolution | MixedResolution | UnmeshedResolution | ExternalResolution | UnknownResolution | UnavailableResolution;
export type ResolutionKind = Resolution['kind'];

/** A resolver's failure before the cache knows where the destination is. */
export type ResolveFailure = Omit<UnavailableResolution, 'inCluster'>;

/** What the destination cache asks: one Resolve round trip. Must not reject (a rejection is counted as `internal`). */
export interface DestinationResolver {
  resolve(destination: Destination): Promise<Exclude<Resolution, UnavailableResolution> | ResolveFailure>;
}
