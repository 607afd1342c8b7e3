import { compileRule, ruleMatches, type CompiledRule, type PlaintextRule } from './destination-table.ts';

/** What the sidecar knows of an egress destination: the address dialled, and the name the app used (HTTP Host, TLS SNI). */
export interface EgressDestination {
  /** The original destination's IP (transparent TCP/TLS), or the host the request names (HTTP). */
  readonly address: string;
  readonly port: number;
  /** The TLS SNI, or the HTTP Host's name; null when the app named none (plain TCP). */
  readonly name: string | null;
}

/**
 * Egress: traffic to destinations outside the cluster (discovery says `external`, or — without
 * discovery — every passthrough). MESHLET_EGRESS_DENY wins over MESHLET_EGRESS_ALLOW, which wins
 * over the default (MESHLET_OUTBOUND_PASSTHROUGH). A rule is HOST (or `*.suffix`) or CIDR, with
 * an optional port, as MESHLET_PLAINTEXT_DESTINATIONS reads them: a host rule matches the name
 * the app used (HTTP Host, TLS SNI — plain TCP has none, so only CIDR rules can match it), a CIDR
 * rule the address. Decided per connection (TCP/TLS) or per destination (HTTP), never per byte.
 */
export class EgressRules {
  readonly #default: 'allow' | 'deny';
  readonly #allow: readonly CompiledRule[];
  readonly #deny: readonly CompiledRule[];

  constructor(defaultAction: 'allow' | 'deny', allow: readonly PlaintextRule[] = [], deny: readonly PlaintextRule[] = []) {
    this.#default = defaultAction;
    this.#allow = allow.map(compileRule);
    this.#deny = deny.map(compileRule);
  }

  /**
   * `byName`: allowed only because a host rule matched the name the app used (nothing allows the
   * address itself). The app writes its TLS SNI freely, so the caller must then dial that name,
   * never the address the app chose — else any app reaches any address by naming an allowed
   * host (issue 16 review, test/integration/egress-policy/egress-env-sni-spoofing.test.ts).
   */
  decide(d: EgressDestination): { action: 'allow' | 'deny'; why: string; byName?: true } {
    if (this.#deny.some((r) => matches(r, d))) return { action: 'deny', why: 'MESHLET_EGRESS_DENY' };
    if (this.#allow.some((r) => ruleMatches(r, d.address, d.port))) return { action: 'allow', why: 'MESHLET_EGRESS_ALLOW' };
    if (this.#default === 'deny' && d.name !== null && this.#allow.some((r) => ruleMatches(r, d.name!, d.port))) return { action: 'allow', why: 'MESHLET_EGRESS_ALLOW', byName: true };
    return { action: this.#default, why: `MESHLET_OUTBOUND_PASSTHROUGH=${this.#default}` };
  }
}

function matches(rule: CompiledRule, d: EgressDestination): boolean {
  return ruleMatches(rule, d.address, d.port) || (d.name !== null && ruleMatches(rule, d.name, d.port));
}
