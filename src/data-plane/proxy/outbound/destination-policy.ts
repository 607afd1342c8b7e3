import { BlockList, isIP } from 'node:net';
import type { ClientDecision, CompiledClient, DestinationFacts } from '../../policy/client-policy.ts';
import type { Resolution } from '../../discovery/resolution.ts';
import type { OutboundDecision } from '../../discovery/decide.ts';
import { ProxyError } from '../http/errors.ts';
import type { OutboundLogTarget, RequestDecisionLog } from '../inbound/authorize.ts';
import type { Http1Head, StreamHead } from '../pipeline/request-head.ts';
import type { ConnectionDecisionLog } from '../tcp/app-splice.ts';
import type { ExpectedPeer } from '../tls-dependency.ts';

/**
 * The outbound half of the policy (issue 16, docs/policy.md "Clients"): may this workload's app
 * call this destination? The sidecar hands the outbound proxies one of these; they ask it
 * after routing (the facts it decides on — identities, Service — come from routing and
 * discovery) and before anything is sent:
 *
 * - HTTP, gRPC and Upgrade requests (route.ts): the verdict is cached ON the destination object
 *   the route step already caches, with the compiled client and the name it was made for, so a
 *   repeated request costs two reference compares, a counter increment and the decision-log
 *   test; a reload (a new compiled client) is seen at the next request. A refusal is the
 *   inbound's denial (403 MESHLET_DENIED, gRPC PERMISSION_DENIED) with the client's reason.
 * - the app's own TLS and opaque TCP (outbound-proxy.ts, opaque-outbound.ts): once per
 *   connection; a refusal closes it, counted as MESHLET_DENIED.
 *
 * With no client policy in force (`current()` null: no client selects the workload and
 * MESHLET_DEFAULT_CLIENT_POLICY is allow) nothing is decided, counted or logged.
 */
export interface ClientPolicySource {
  /** The compiled client side in force, read per request (a reload swaps the object); null when none applies. */
  current(): CompiledClient | null;
  /** The counter a decision is counted in (meshlet_policy_client_decisions_total), made once per verdict. */
  series(decision: ClientDecision): { value: number };
  /** This workload's SPIFFE ID: the caller of every outbound decision, in the decision log. */
  self(): string;
  /** The sidecar's decision log, when MESHLET_DECISION_LOG is not off. */
  readonly decisionLog?: (RequestDecisionLog & ConnectionDecisionLog) | undefined;
}

/** A destination as routing knows it, without the name the app used (the facts shared by every request to it). */
export type DestinationFactsBase = Omit<DestinationFacts, 'name'>;

/** What is cached on a destination object: the verdict, and what it was made for. */
export interface CachedVerdict {
  readonly rules: CompiledClient;
  readonly name: string | null;
  /** The destination port (the decision log's `port`). */
  readonly port: number;
  readonly decision: ClientDecision;
  readonly counted: { value: number };
  /** The refusal to answer with (made once), or null when the verdict allows. */
  readonly refusal: ProxyError | null;
  /** The destination as the decision log writes it (made once per verdict, not per request). */
  readonly target: OutboundLogTarget;
}

/** A destination object that carries its facts and its cached verdict (OutboundDestination). */
export interface VerdictHolder {
  readonly facts: DestinationFactsBase;
  verdict: CachedVerdict | null;
}

export const DENIED_BY_CLIENT_POLICY = 'request denied by the client policy';

/** What the client policy says of one TLS or opaque TCP connection (DestinationPolicy.connection). */
export type ConnectionVerdict = 'allow' | 'deny' | 'allow-by-name';

export class DestinationPolicy {
  readonly #source: ClientPolicySource;
  readonly #log: (RequestDecisionLog & ConnectionDecisionLog) | undefined;

  constructor(source: ClientPolicySource) {
    this.#source = source;
    this.#log = source.decisionLog;
  }

  /**
   * One HTTP request (or gRPC call, or Upgrade) to `holder`: null to go on, or the refusal.
   * `name`: the host the app named; `target`: the origin-form request target (the log takes its path).
   */
  request(head: Http1Head | StreamHead, holder: VerdictHolder, name: string, target: string): ProxyError | null {
    const rules = this.#source.current();
    if (rules === null) return null;
    let v = holder.verdict;
    if (v === null || v.rules !== rules || v.name !== name) {
      v = this.#verdict(rules, { ...holder.facts, name });
      holder.verdict = v;
    }
    this.#record(head, v, target);
    return v.refusal;
  }

  /** One request decided from facts that are not cached (an endpoint of a mixed Service). */
  requestWithFacts(head: Http1Head | StreamHead, facts: DestinationFacts, target: string): ProxyError | null {
    const rules = this.#source.current();
    if (rules === null) return null;
    const v = this.#verdict(rules, facts);
    this.#record(head, v, target);
    return v.refusal;
  }

  /**
   * One TLS or opaque TCP connection: `allow` to go on; `deny`: the caller closes it
   * (MESHLET_DENIED); `allow-by-name`: allowed only because of `facts.name` (a `host` entry
   * matched it, nothing else would allow the address) — the caller must then dial that name, not
   * the address the app chose, because the app writes the SNI freely: deciding on the name and
   * dialling the address would let any app reach any address by naming an allowed host.
   */
  connection(facts: DestinationFacts, nameIsDialled = false): ConnectionVerdict {
    const rules = this.#source.current();
    if (rules === null) return 'allow';
    let decision: ClientDecision;
    try {
      decision = rules.decide(facts);
    } catch {
      // Fail closed: a client policy that cannot decide refuses.
      return 'deny';
    }
    this.#observe(facts, decision);
    if (decision.decision !== 'allow') return 'deny';
    return this.#byName(rules, facts, decision, nameIsDialled);
  }

  /**
   * An open TLS or opaque TCP connection decided again with the client policy in force now (an
   * applied reload, DecidedConnections): true keeps it. `nameIsDialled` as for connection() —
   * true too for a connection an `allow-by-name` verdict sent to the name. Still allowed is not
   * counted or logged (it is not a new connection); a denial is, like any.
   */
  reconsider(facts: DestinationFacts, nameIsDialled: boolean): boolean {
    const rules = this.#source.current();
    if (rules === null) return true;
    let decision: ClientDecision;
    try {
      decision = rules.decide(facts);
    } catch {
      return false;
    }
    if (decision.decision !== 'allow') {
      this.#observe(facts, decision);
      return false;
    }
    // Dialled at the address, now allowed only for the name the app wrote: no longer allowed.
    return this.#byName(rules, facts, decision, nameIsDialled) === 'allow';
  }

  #observe(facts: DestinationFacts, decision: ClientDecision): void {
    this.#source.series(decision).value++;
    this.#log?.connectionDecided('outbound', this.#source.self(), facts.port, decision, this.#log === undefined ? undefined : logTargetOf(facts));
  }

  /** An allow: does it rest on the name alone? */
  #byName(rules: CompiledClient, facts: DestinationFacts, decision: ClientDecision, nameIsDialled: boolean): ConnectionVerdict {
    // An audit allow enforces nothing; an allow by a default, by an entry that is not a host, or
    // of a name the sidecar dials anyway (a MESHLET_OUTBOUND_TCP mapping) cannot rest on the name.
    if (nameIsDialled || decision.wouldDeny || decision.route === null || facts.name === null || !rules.matchesByName(decision.route)) return 'allow';
    // Only for a connection a host entry allowed: a second, uncounted decision without the name
    // (another entry, a cidr, may allow the address itself) — one more scan, once per connection.
    try {
      const without = rules.decide({ ...facts, name: null });
      return without.decision === 'allow' && !without.wouldDeny ? 'allow' : 'allow-by-name';
    } catch {
      return 'allow-by-name';
    }
  }

  #verdict(rules: CompiledClient, facts: DestinationFacts): CachedVerdict {
    let decision: ClientDecision;
    try {
      decision = rules.decide(facts);
    } catch (err) {
      const refusal = new ProxyError('MESHLET_INTERNAL', 'the client policy could not decide', { cause: err });
      return { rules, name: facts.name, port: facts.port, decision: { decision: 'deny', client: rules.name, route: null, code: 'no-destination-matched', reason: 'the client policy could not decide', mode: 'enforce', wouldDeny: false }, counted: { value: 0 }, refusal, target: logTargetOf(facts) };
    }
    const refusal = decision.decision === 'allow' ? null : new ProxyError('MESHLET_DENIED', DENIED_BY_CLIENT_POLICY, { details: { route: null, client: decision.client, reason: decision.reason } });
    return { rules, name: facts.name, port: facts.port, decision, counted: this.#source.series(decision), refusal, target: logTargetOf(facts) };
  }

  #record(head: Http1Head | StreamHead, v: CachedVerdict, target: string): void {
    v.counted.value++;
    const log = this.#log;
    const d = v.decision;
    // As inbound: denials and would-denies always reach the log (it rate-limits them); allows only when it samples them.
    if (log !== undefined && (d.decision !== 'allow' || d.wouldDeny || log.logsAllows)) {
      // The target as the app sent it, without the query (queries carry tokens: docs/decision-log.md).
      const q = target.indexOf('?');
      log.decided('outbound', head, { peer: this.#source.self(), port: v.port, method: head.method, path: q === -1 ? target : target.slice(0, q) }, d, v.target);
    }
  }
}

/**
 * An outbound decision's destination for the decision log: the one SPIFFE ID it must prove (else
 * null), and the name the app used — or the address, or the Service — with the port.
 */
export function logTargetOf(facts: DestinationFacts): OutboundLogTarget {
  const host = facts.name ?? facts.address ?? (facts.service === null ? '?' : `${facts.service.name}.${facts.service.namespace}`);
  const bracketed = host.includes(':') ? `[${host}]` : host;
  return { server: facts.meshed && facts.identities.length === 1 ? facts.identities[0]! : null, destination: `${bracketed}:${facts.port}` };
}

/** The Service of a discovery answer ("name.namespace"), or null. */
function serviceOf(r: Resolution | undefined): DestinationFacts['service'] {
  if (r === undefined || !('service' in r) || r.service === '') return null;
  const dot = r.service.indexOf('.');
  return dot === -1 ? null : { name: r.service.slice(0, dot), namespace: r.service.slice(dot + 1) };
}

/**
 * An IP literal (brackets taken off; an IPv4-mapped IPv6 address as the IPv4 address it maps, in
 * any spelling: `::ffff:10.0.0.1`, `::ffff:a00:1`, `0:0:0:0:0:ffff:a00:1`), or null for a name.
 */
export function addressOf(host: string): string | null {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  const v = isIP(bare);
  if (v !== 6) return v === 4 ? bare : null;
  if (bare.startsWith('::ffff:') && isIP(bare.slice(7)) === 4) return bare.slice(7);
  if (!IPV4_MAPPED.check(bare, 'ipv6')) return bare;
  // The WHATWG URL parser writes an IPv6 address in its one short form: ::ffff:XXXX:XXXX here.
  const groups = new URL(`http://[${bare}]/`).hostname.slice(1, -1).split(':').slice(-2).map((g) => parseInt(g, 16));
  return `${groups[0]! >> 8}.${groups[0]! & 255}.${groups[1]! >> 8}.${groups[1]! & 255}`;
}

/** ::ffff:0:0/96, the IPv4-mapped IPv6 addresses (RFC 4291 2.5.5.2). */
const IPV4_MAPPED = new BlockList();
IPV4_MAPPED.addSubnet('::ffff:0:0', 96, 'ipv6');

/**
 * The facts of a destination discovery answered for (`d` = decide(r)): meshed only when every
 * endpoint is (`mtls`); a mixed Service is not meshed as a whole, so identity rules never match
 * it (fail closed) while a `service` rule does.
 */
export function factsFromDiscovery(r: Resolution | undefined, d: OutboundDecision, address: string | null, port: number): DestinationFactsBase {
  const service = serviceOf(r);
  if (d.action === 'mtls') return { address, port, meshed: true, identities: d.identities, trustDomains: [], service };
  return { address, port, meshed: false, identities: [], trustDomains: [], service };
}

/** The facts of a configured destination: a mesh one (MESHLET_DESTINATION_ADDRESSES, mesh by default) pins `expected`; a plaintext one nothing. */
export function factsFromConfig(dialled: string, port: number, expected: ExpectedPeer | null): DestinationFactsBase {
  const address = addressOf(dialled);
  if (expected === null) return { address, port, meshed: false, identities: [], trustDomains: [], service: null };
  return { address, port, meshed: true, identities: expected.spiffeId ? [expected.spiffeId] : [], trustDomains: expected.spiffeId ? [] : (expected.trustDomains ?? []), service: null };
}
