import { BlockList, isIP } from 'node:net';
import { DEFAULT_TRUST_DOMAIN } from '../../common/identity/spiffe-id.ts';
import { namespace as namespaceMatcher, trustDomain as trustDomainMatcher, type CallerMatcher } from './callers.ts';
import type { Client, ClientDestination, ClientMeshDefault, DefaultPolicy, EnforcementMode, Policy, WorkloadSelf } from './types.ts';

/**
 * The client side of a policy (issue 16, docs/policy.md "Clients"): which destinations a
 * workload's outbound sidecar lets its app call. Compiled once per reload, for ONE workload,
 * like the server side; decided once per destination (HTTP: the sidecar caches the verdict on
 * the destination object it already caches) or per connection (TLS, opaque TCP), never per byte.
 */

/** What the outbound sidecar knows of one destination when it decides (docs/policy.md "Matching facts"). */
export interface DestinationFacts {
  /**
   * The name the app used, lowercase, without port: the HTTP Host / :authority, or the TLS SNI
   * of the app's own TLS; null for plain TCP (it names nothing).
   */
  readonly name: string | null;
  /** The address dialled, when it is an IP (the original destination; an IP-literal Host). */
  readonly address: string | null;
  /** The port the app dialled (a Service port, or a pod's). */
  readonly port: number;
  /** Reached over mTLS to a mesh identity (a configured mesh destination, or discovery said meshed). */
  readonly meshed: boolean;
  /** The exact SPIFFE IDs the server may present; empty when only trust domains are known. */
  readonly identities: readonly string[];
  /** Trust domains the server may belong to when no exact identity is known (MESHLET_ACCEPTED_TRUST_DOMAINS). */
  readonly trustDomains: readonly string[];
  /** The Kubernetes Service discovery resolved the destination to, or null. */
  readonly service: { readonly name: string; readonly namespace: string } | null;
}

/** Why a client decision came out as it did; stable, for metrics, logs and tests. */
export type ClientDecisionCode = 'destination-allowed' | 'port-not-allowed' | 'no-destination-matched' | 'no-client-policy';

export interface ClientDecision {
  readonly decision: 'allow' | 'deny';
  /** The client entry that decided; null when the mesh client default did (no client selects the workload). */
  readonly client: string | null;
  /** The destination entry that allowed, or null when a default decided. The `route` of metrics and the decision log. */
  readonly route: string | null;
  readonly code: ClientDecisionCode;
  readonly reason: string;
  readonly mode: EnforcementMode;
  readonly wouldDeny: boolean;
}

interface CompiledDestination {
  readonly name: string;
  readonly ports: ReadonlySet<number> | null;
  readonly matches: (facts: DestinationFacts) => boolean;
}

/** The compiled client side of one workload. */
export interface CompiledClient {
  /** The client entry; null: the mesh client default (MESHLET_DEFAULT_CLIENT_POLICY) applies. */
  readonly name: string | null;
  readonly defaultPolicy: DefaultPolicy;
  readonly mode: EnforcementMode;
  readonly destinations: readonly string[];
  decide(facts: DestinationFacts): ClientDecision;
  /**
   * True when destination `route` matches on the name the app used (a `host` entry): the one
   * fact the app writes freely (the SNI of its own TLS), so the proxy must dial that name.
   */
  matchesByName(route: string): boolean;
}

/** The first client of `policy` whose selector matches this workload (same rules as servers). */
export function selectClient(policy: Policy, self: WorkloadSelf): Client | null {
  if (policy.metadata?.namespace !== undefined && policy.metadata.namespace !== self.namespace) return null;
  for (const client of policy.spec.clients ?? []) {
    const { serviceAccount, matchLabels } = client.selector;
    if (serviceAccount !== undefined && serviceAccount !== self.serviceAccount) continue;
    if (matchLabels && !Object.entries(matchLabels).every(([k, v]) => self.labels?.[k] === v)) continue;
    return client;
  }
  return null;
}

/**
 * The client side of `self` from `policy` (null: no policy). Null when nothing restricts the
 * workload's outbound: no client selects it and the mesh client default is `allow` — the proxy
 * then decides nothing at all, at no cost.
 */
export function compileClient(policy: Policy | null, self: WorkloadSelf, meshClientDefault: ClientMeshDefault): CompiledClient | null {
  const client = policy ? selectClient(policy, self) : null;
  if (client === null) return meshClientDefault === 'allow' ? null : new ClientRules(null, meshClientDefault, 'enforce', [], self);
  return new ClientRules(client.name, client.default ?? 'deny', client.mode ?? 'enforce', client.destinations, self);
}

class ClientRules implements CompiledClient {
  readonly name: string | null;
  readonly defaultPolicy: DefaultPolicy;
  readonly mode: EnforcementMode;
  readonly destinations: readonly string[];
  readonly #compiled: readonly CompiledDestination[];
  readonly #who: string;
  readonly #byName: ReadonlySet<string>;

  constructor(name: string | null, defaultPolicy: DefaultPolicy, mode: EnforcementMode, destinations: readonly ClientDestination[], self: WorkloadSelf) {
    this.name = name;
    this.defaultPolicy = defaultPolicy;
    this.mode = mode;
    this.destinations = Object.freeze(destinations.map((d) => d.name));
    const td = self.trustDomain ?? DEFAULT_TRUST_DOMAIN;
    this.#compiled = destinations.map((d) => compileDestination(d, td, self.namespace));
    this.#who = name === null ? 'no client of the policy selects this workload' : `client "${name}"`;
    this.#byName = new Set(destinations.filter((d) => 'host' in d).map((d) => d.name));
    Object.freeze(this);
  }

  matchesByName(route: string): boolean {
    return this.#byName.has(route);
  }

  decide(facts: DestinationFacts): ClientDecision {
    const what = describeDestination(facts);
    let portMiss: CompiledDestination | null = null;
    for (const d of this.#compiled) {
      if (!d.matches(facts)) continue;
      if (d.ports !== null && !d.ports.has(facts.port)) {
        portMiss ??= d;
        continue;
      }
      return freeze({ decision: 'allow', client: this.name, route: d.name, code: 'destination-allowed', reason: `destination ${what} is allowed by ${this.#who}, destination "${d.name}"`, mode: 'enforce', wouldDeny: false });
    }
    if (this.name === null) return this.#byDefault(facts, 'no-client-policy', `destination ${what}: ${this.#who}`, 'the mesh client default (MESHLET_DEFAULT_CLIENT_POLICY)');
    if (portMiss !== null) {
      return this.#byDefault(facts, 'port-not-allowed', `destination ${what} matches ${this.#who}'s destination "${portMiss.name}" only on port${portMiss.ports!.size > 1 ? 's' : ''} ${[...portMiss.ports!].join(', ')}`, 'default');
    }
    return this.#byDefault(facts, 'no-destination-matched', `destination ${what} is not among ${this.#who}'s destinations`, 'default');
  }

  #byDefault(facts: DestinationFacts, code: ClientDecisionCode, why: string, whose: string): ClientDecision {
    switch (this.defaultPolicy) {
      case 'deny':
        return this.#denial(code, `${why}; ${whose} is deny`);
      case 'audit':
        return freeze({ decision: 'allow', client: this.name, route: null, code, reason: `audit: would deny: ${why}; ${whose} is audit`, mode: 'audit', wouldDeny: true });
      case 'all-authenticated':
        return facts.meshed
          ? freeze({ decision: 'allow', client: this.name, route: null, code, reason: `${why}; ${whose} all-authenticated allows a meshed destination`, mode: 'enforce', wouldDeny: false })
          : this.#denial(code, `${why}; ${whose} all-authenticated allows only meshed destinations, and this one is not meshed`);
    }
  }

  /** A denial, or under `mode: audit` the allow that records it. */
  #denial(code: ClientDecisionCode, reason: string): ClientDecision {
    return this.mode === 'audit'
      ? freeze({ decision: 'allow', client: this.name, route: null, code, reason: `audit: would deny: ${reason}`, mode: 'audit', wouldDeny: true })
      : freeze({ decision: 'deny', client: this.name, route: null, code, reason, mode: 'enforce', wouldDeny: false });
  }
}

function freeze(d: ClientDecision): ClientDecision {
  return Object.freeze(d);
}

/**
 * `orders.shop:80`, `10.1.2.3:5432`, `[fd00::1]:443`, with the identity when it is exactly one;
 * `spiffe://…/sa/orders port 8080` when nothing names it but its identity (`policy explain --to`).
 */
export function describeDestination(facts: DestinationFacts): string {
  const host = facts.name ?? facts.address;
  const id = facts.identities.length === 1 ? facts.identities[0]! : null;
  if (host === null) return id !== null ? `${id} port ${facts.port}` : `(unnamed) port ${facts.port}`;
  const where = host.includes(':') ? `[${host}]:${facts.port}` : `${host}:${facts.port}`;
  return id !== null ? `${where} (${id})` : where;
}

function compileDestination(d: ClientDestination, td: string, ownNamespace: string): CompiledDestination {
  return { name: d.name, ports: d.ports ? new Set(d.ports) : null, matches: targetMatcher(d, td, ownNamespace) };
}

/**
 * Identity kinds match a meshed destination only when EVERY identity it may present matches
 * (a Service backed by several ServiceAccounts): one foreign identity behind it and the
 * destination is not the one the owner named (fail closed). With no exact identity known (a
 * configured destination that only pins trust domains), `spiffeId` and `namespace` cannot be
 * proven and do not match; `trustDomain` matches when every accepted trust domain is it.
 */
function targetMatcher(d: ClientDestination, td: string, ownNamespace: string): (facts: DestinationFacts) => boolean {
  if ('spiffeId' in d) {
    const id = d.spiffeId;
    return (f) => f.meshed && f.identities.length > 0 && f.identities.every((x) => x === id);
  }
  if ('service' in d) {
    const name = d.service;
    const ns = d.namespace ?? ownNamespace;
    return (f) => f.service !== null && f.service.name === name && f.service.namespace === ns;
  }
  if ('namespace' in d) {
    const m: CallerMatcher = namespaceMatcher(d.trustDomain ?? td, d.namespace);
    return (f) => f.meshed && f.identities.length > 0 && f.identities.every(m);
  }
  if ('trustDomain' in d) {
    const m = trustDomainMatcher(d.trustDomain);
    const domain = d.trustDomain;
    return (f) => f.meshed && (f.identities.length > 0 ? f.identities.every(m) : f.trustDomains.length > 0 && f.trustDomains.every((t) => t === domain));
  }
  if ('anyAuthenticated' in d) return (f) => f.meshed;
  if ('host' in d) {
    const host = d.host.toLowerCase();
    if (host.startsWith('*.')) {
      const suffix = host.slice(1);
      return (f) => f.name !== null && f.name.length > suffix.length && f.name.endsWith(suffix);
    }
    return (f) => f.name === host;
  }
  const cidr = d.cidr;
  const slash = cidr.indexOf('/');
  const address = cidr.slice(0, slash);
  const prefix = Number(cidr.slice(slash + 1));
  const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
  const list = new BlockList();
  list.addSubnet(address, prefix, family);
  // BlockList checks an IPv4 address against IPv6 rules as its IPv4-mapped form, so `::/0` would
  // match every IPv4 address. An IPv6 entry names IPv6 addresses only — unless it is written
  // inside ::ffff:0:0/96, which names IPv4 addresses by definition.
  const ipv6Only = family === 'ipv6' && !(prefix >= 96 && IPV4_MAPPED.check(address, 'ipv6'));
  return (f) => {
    if (f.address === null) return false;
    const v = isIP(f.address);
    if (v === 0) return false;
    if (ipv6Only && (v === 4 || IPV4_MAPPED.check(f.address, 'ipv6'))) return false;
    return list.check(f.address, v === 6 ? 'ipv6' : 'ipv4');
  };
}

/** ::ffff:0:0/96, the IPv4-mapped IPv6 addresses (RFC 4291 2.5.5.2). */
const IPV4_MAPPED = new BlockList();
IPV4_MAPPED.addSubnet('::ffff:0:0', 96, 'ipv6');
