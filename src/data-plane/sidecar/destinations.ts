import type { PlaintextDestination, SidecarConfig } from './sidecar-env.ts';
import { EgressRules } from '../proxy/outbound/egress-rules.ts';
import type { DestinationConfig, MeshDestination, PlaintextRule } from '../proxy/outbound/destination-table.ts';
import type { ExpectedPeer } from '../proxy/tls-dependency.ts';

/**
 * The outbound routing table from the sidecar's settings:
 * - MESHLET_DESTINATION_ADDRESSES: destinations dialed at a given address (explicit mode, local meshes);
 * - MESHLET_DESTINATION_IDENTITIES: the exact identity a destination must prove; otherwise a
 *   server of one of MESHLET_ACCEPTED_TRUST_DOMAINS is accepted;
 * - MESHLET_PLAINTEXT_DESTINATIONS: the only destinations ever reached without mTLS.
 */
export function destinationConfig(c: Readonly<SidecarConfig>): DestinationConfig {
  const expectedFor = (authority: string): ExpectedPeer => {
    const id = c.destinationIdentities.get(authority);
    return id ? { spiffeId: id } : { trustDomains: c.acceptedTrustDomains };
  };
  const mesh: MeshDestination[] = [];
  for (const [authority, address] of c.destinationAddresses) {
    const colon = authority.lastIndexOf(':');
    mesh.push({ host: authority.slice(0, colon), port: Number(authority.slice(colon + 1)), address, expected: expectedFor(authority) });
  }
  const plaintext = c.plaintextDestinations.map(asRule);
  // Mesh by default: any other destination is dialed as named, over mTLS, and must prove the
  // identity listed for it or belong to an accepted trust domain. Never plaintext on its own.
  return { mesh, plaintext, defaultMesh: { expected: { trustDomains: c.acceptedTrustDomains }, identities: Object.fromEntries(c.destinationIdentities) } };
}

/** One HOST[:PORT] or CIDR[:PORT] entry as a destination rule. */
function asRule(d: PlaintextDestination): PlaintextRule {
  return { ...(d.host ? { hosts: [d.host] } : {}), ...(d.cidr ? { cidrs: [d.cidr] } : {}), ...(d.port ? { ports: [d.port] } : {}) };
}

/** MESHLET_EGRESS_DENY, then MESHLET_EGRESS_ALLOW, then MESHLET_OUTBOUND_PASSTHROUGH (egress-rules.ts). */
export function egressRules(c: Readonly<SidecarConfig>): EgressRules {
  return new EgressRules(c.outboundPassthrough, c.egressAllow.map(asRule), c.egressDeny.map(asRule));
}
