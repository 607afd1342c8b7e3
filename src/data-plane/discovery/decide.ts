import type { DestinationProtocol, Resolution } from './resolution.ts';

/**
 * What the outbound sidecar must do with a destination, from what discovery says about it:
 * the table in docs/discovery.md ("What the sidecar does with each answer"), as a pure
 * function. Never a silent downgrade: plaintext only for `unmeshed` (every endpoint known and
 * none meshed) and for the unmeshed endpoints of a `mixed` Service dialled one by one; every
 * doubt inside the cluster is a refusal.
 */
export type OutboundDecision =
  /** mTLS; the server's SPIFFE ID must be one of `identities` (any other: refused like wrong_identity). */
  | { action: 'mtls'; identities: readonly string[]; protocol: DestinationProtocol }
  /** Plaintext to an in-cluster destination with no meshed endpoint; peer labelled `unmeshed`. */
  | { action: 'plaintext'; label: 'unmeshed'; protocol: DestinationProtocol }
  /**
   * A `mixed` Service: dial one of these endpoints yourself (never the Service address, where
   * kube-proxy would choose after us), each with its own decision. Ready endpoints only, in
   * the service's order.
   */
  | { action: 'endpoints'; endpoints: readonly EndpointDecision[]; protocol: DestinationProtocol }
  /** Outside the cluster: the egress rules (passthrough, MESHLET_PLAINTEXT_DESTINATIONS, …). */
  | { action: 'egress' }
  /** Fail closed. */
  | { action: 'refuse'; reason: RefuseReason; detail: string };

export interface EndpointDecision {
  address: string;
  port: number;
  then: { action: 'mtls'; identities: readonly [string] } | { action: 'plaintext'; label: 'unmeshed' };
}

/**
 * `unknown_destination`: discovery says in the cluster but not known (yet) or not usable;
 * `discovery_unavailable`: no answer, and the destination may be in the cluster;
 * `no_ready_endpoint`: a mixed Service none of whose endpoints is ready.
 */
export type RefuseReason = 'unknown_destination' | 'discovery_unavailable' | 'no_ready_endpoint';

export function decide(resolution: Resolution): OutboundDecision {
  switch (resolution.kind) {
    case 'meshed':
      return { action: 'mtls', identities: resolution.identities, protocol: resolution.protocol };
    case 'mixed': {
      const endpoints: EndpointDecision[] = [];
      for (const e of resolution.endpoints) {
        if (!e.ready) continue;
        endpoints.push({ address: e.address, port: e.port, then: e.identity !== undefined ? { action: 'mtls', identities: [e.identity] } : { action: 'plaintext', label: 'unmeshed' } });
      }
      if (endpoints.length === 0) return { action: 'refuse', reason: 'no_ready_endpoint', detail: `${resolution.service || 'the Service'} has meshed and unmeshed endpoints but none is ready` };
      return { action: 'endpoints', endpoints, protocol: resolution.protocol };
    }
    case 'unmeshed':
      return { action: 'plaintext', label: 'unmeshed', protocol: resolution.protocol };
    case 'external':
      return { action: 'egress' };
    case 'unknown':
      return { action: 'refuse', reason: 'unknown_destination', detail: resolution.reason || 'in the cluster but not known' };
    case 'unavailable':
      return resolution.inCluster ? { action: 'refuse', reason: 'discovery_unavailable', detail: `discovery is unavailable (${resolution.reason}): ${resolution.detail}` } : { action: 'egress' };
  }
}
