import { DestinationPolicy } from '../../../src/data-plane/proxy/outbound/destination-policy.ts';
import type { ClientDecision, CompiledClient } from '../../../src/data-plane/policy/client-policy.ts';
import { IDS } from '../proxy/support/mesh-fixture.ts';

/**
 * frontend's client side as the proxy-level tests hand it to an OutboundProxy: the compiled
 * client `current()` returns (swap it to play a reload), every counted decision pushed to
 * `decisions` (the stand-in for meshlet_policy_client_decisions_total).
 */
export function recordingClientPolicy(current: () => CompiledClient | null, decisions: ClientDecision[]): DestinationPolicy {
  return new DestinationPolicy({
    current,
    series: (d) => {
      decisions.push(d);
      return { value: 0 };
    },
    self: () => IDS.frontend,
  });
}
