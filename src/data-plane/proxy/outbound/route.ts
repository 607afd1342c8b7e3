import type * as http2 from 'node:http2';
import type { TrackedConnection } from '../connection-registry.ts';
import { malformedRequest, ProxyError } from '../http/errors.ts';
import { quoted } from '../http/headers.ts';
import type { NextHop } from '../http/forward-request.ts';
import type { NextHopContext, NextHopTarget } from '../http/next-hop-socket.ts';
import { H2SessionPool } from '../h2/h2-session-pool.ts';
import type { DecideStep, Decision, Destination } from '../pipeline/request-pipeline.ts';
import type { Http1Head, StreamHead } from '../pipeline/request-head.ts';
import { createUpstreamPool } from '../upstream/upstream-pool.ts';
import type { ClientTls } from '../tls-dependency.ts';
import { DestinationTable, parseAuthority, type DestinationConfig, type MeshDestination, type Route } from './destination-table.ts';
import { decide as decideDestination } from '../../discovery/decide.ts';
import type { Resolution } from '../../discovery/resolution.ts';
import type { EgressRules } from './egress-rules.ts';
import { meshTarget, pinnedTo } from './mesh-target.ts';
import { UNMESHED_PEER } from '../../metrics/label-values.ts';
import { addressOf, factsFromConfig, factsFromDiscovery, type CachedVerdict, type DestinationFactsBase, type DestinationPolicy, type VerdictHolder } from './destination-policy.ts';

/** What the route step asks of discovery (src/data-plane/discovery/): a cached answer, or a promise of one; never rejects. */
export interface RouteDiscovery {
  resolve(destination: { host: string; port: number }): Resolution | Promise<Resolution>;
  /** Outside the cluster: plaintext to it or refused, by the egress rules (MESHLET_EGRESS_*, MESHLET_OUTBOUND_PASSTHROUGH). */
  readonly egress: Pick<EgressRules, 'decide'>;
}

/** Destinations discovery made, kept for their pools; the oldest are closed past this many. */
const MAX_DISCOVERED = 1024;

/**
 * The outbound deciding step: which destination a request names, and whether the sidecar may
 * go there. Routed by Host / :authority (a transparently redirected request) or by the
 * absolute-form URI's authority (the app uses the sidecar as HTTP_PROXY). A name that is
 * neither a mesh destination nor a configured plaintext one is refused: the sidecar never
 * sends plaintext on its own. Each destination's hops are made once, on first use.
 */
export class RouteStep implements DecideStep {
  readonly #table: DestinationTable;
  readonly #tls: ClientTls;
  readonly #hopContext: NextHopContext;
  readonly #handshakeFailed: (err: Error) => void;
  /** Keyed by `mesh:host:port` / `plain:host:port`. */
  readonly #destinations = new Map<string, OutboundDestination>();

  readonly #discovery: RouteDiscovery | undefined;
  /** Keyed by what discovery said (`mtls:host:port:ids:service`, `plain:host:port:service`), insertion-ordered for eviction. */
  readonly #discovered = new Map<string, OutboundDestination>();
  /** The client side of the policy (destination-policy.ts); absent: outbound is not decided by policy. */
  readonly #policy: DestinationPolicy | undefined;

  constructor(config: DestinationConfig, tls: ClientTls, hopContext: NextHopContext, handshakeFailed: (err: Error) => void, discovery?: RouteDiscovery, policy?: DestinationPolicy) {
    this.#table = new DestinationTable(config);
    this.#tls = tls;
    this.#hopContext = hopContext;
    this.#handshakeFailed = handshakeFailed;
    this.#discovery = discovery;
    this.#policy = policy;
  }

  decide(head: Http1Head | StreamHead, _conn: TrackedConnection): Decision | ProxyError | Promise<Decision | ProxyError> {
    let authority = head.authority;
    let path = head.target;
    if (head.protocol === 'http1' && path.charCodeAt(0) !== 47 /* '/' */) {
      const absolute = absoluteForm(head);
      if (absolute instanceof ProxyError) return absolute;
      ({ authority, path } = absolute);
    }
    if (authority === '') {
      return new ProxyError('MESHLET_MISSING_HOST', head.protocol === 'h2' ? 'the stream names no destination (no :authority, no Host)' : 'the request names no destination (no Host header, no absolute URI)');
    }
    const discovery = this.#discovery;
    const route = this.#table.resolve(authority, discovery !== undefined);
    if (route !== null) {
      const destination = this.#destination(route);
      // Routing first (it names the facts: identity, address), then the client policy.
      const refused = this.#policy?.request(head, destination, route.host, path) ?? null;
      if (refused !== null) return refused;
      return { destination, path, route: undefined, authz: 'none', identity: null };
    }
    const parsed = discovery === undefined ? null : parseAuthority(authority);
    if (parsed === null) {
      return new ProxyError('MESHLET_UNKNOWN_DESTINATION', `${authority} is not a known mesh destination nor a configured plaintext destination; refused (the sidecar never sends plaintext on its own)`);
    }
    // `2130706433`, `0x7f.1`, `127.1`: no IP literal to the address rules (discovery, the egress
    // CIDRs, the client policy's cidr entries), yet the resolver (inet_aton) dials an IP. Refused
    // before anything resolves it, so an address is always decided as the address it is.
    // Per request, so only a host that starts with a digit pays the regular expression.
    const first = parsed.host.charCodeAt(0);
    if (first >= 48 && first <= 57 && LEGACY_NUMERIC_IPV4.test(parsed.host)) {
      return new ProxyError('MESHLET_BAD_REQUEST', `${parsed.host} is an IPv4 address in a legacy numeric form (the resolver would dial it as one, out of reach of the address rules); write it as a dotted quad without leading zeros`);
    }
    // Nothing configured names it: what the control plane knows decides (docs/discovery.md).
    const answer = discovery!.resolve(parsed);
    return answer instanceof Promise ? answer.then((r) => this.#fromDiscovery(head, r, parsed.host, parsed.port, path)) : this.#fromDiscovery(head, answer, parsed.host, parsed.port, path);
  }

  #fromDiscovery(head: Http1Head | StreamHead, r: Resolution, host: string, port: number, path: string): Decision | ProxyError {
    const d = decideDestination(r);
    let destination: OutboundDestination;
    let refused: ProxyError | null = null;
    const policy = this.#policy;
    switch (d.action) {
      case 'mtls':
        destination = this.#discoveredMesh(host, port, d.identities, factsFromDiscovery(r, d, addressOf(host), port));
        break;
      case 'endpoints': {
        // A Service with meshed and unmeshed endpoints: one endpoint, dialled directly. The client
        // policy decides on the Service as a whole (not meshed as a whole), not cached per endpoint.
        const facts = factsFromDiscovery(r, d, addressOf(host), port);
        if (policy !== undefined) refused = policy.requestWithFacts(head, { ...facts, name: host }, path);
        if (refused !== null) return refused;
        const e = d.endpoints[Math.floor(Math.random() * d.endpoints.length)]!;
        destination = e.then.action === 'mtls' ? this.#discoveredMesh(e.address, e.port, e.then.identities, facts) : this.#discoveredPlain(e.address, e.port, facts);
        return { destination, path, route: undefined, authz: 'none', identity: null };
      }
      case 'plaintext':
        destination = this.#discoveredPlain(host, port, factsFromDiscovery(r, d, addressOf(host), port));
        break;
      case 'egress':
        {
          const verdict = this.#discovery!.egress.decide({ address: host, port, name: host });
          if (verdict.action === 'deny') return new ProxyError('MESHLET_UNKNOWN_DESTINATION', `${host}:${port} is outside the cluster and the egress rules deny it (${verdict.why}); refused`);
        }
        destination = this.#discoveredPlain(host, port, factsFromDiscovery(r, d, addressOf(host), port), true);
        break;
      case 'refuse':
        return new ProxyError('MESHLET_UNKNOWN_DESTINATION', `${host}:${port}: ${d.detail}; refused rather than risk plaintext to a meshed destination (${d.reason})`);
    }
    if (policy !== undefined) refused = policy.request(head, destination, host, path);
    if (refused !== null) return refused;
    return { destination, path, route: undefined, authz: 'none', identity: null };
  }

  /** mTLS to a destination discovery says is meshed: one identity pinned, several checked after the handshake. */
  #discoveredMesh(host: string, port: number, identities: readonly string[], facts: DestinationFactsBase): OutboundDestination {
    // The Service is part of the key: the client policy's verdict is cached on the destination, and
    // an address (pod IPs are reused) can belong to another Service in discovery's next answer.
    const key = `mtls:${host}:${port}:${identities.join(',')}:${serviceKey(facts)}`;
    const known = this.#discovered.get(key);
    if (known !== undefined) return known;
    // decide() only answers mtls with at least one identity.
    const pin = pinnedTo(identities)!;
    const where = { label: `meshed destination ${host}:${port} (${identities.join('|')})`, host, port };
    return this.#keep(key, new OutboundDestination(meshTarget(this.#tls, where, pin, 'http/1.1', this.#handshakeFailed), meshTarget(this.#tls, where, pin, 'h2', this.#handshakeFailed), this.#hopContext, facts));
  }

  /** Plaintext to an unmeshed in-cluster destination (`peer` label `unmeshed`), or outside the cluster (egress: `unauthenticated`). */
  #discoveredPlain(host: string, port: number, facts: DestinationFactsBase, egress = false): OutboundDestination {
    const key = `${egress ? 'egress' : 'plain'}:${host}:${port}:${serviceKey(facts)}`;
    const known = this.#discovered.get(key);
    if (known !== undefined) return known;
    const target: NextHopTarget = egress ? { label: `egress destination ${host}:${port}`, host, port } : { label: `unmeshed destination ${host}:${port}`, host, port, plaintextPeer: UNMESHED_PEER };
    return this.#keep(key, new OutboundDestination(target, target, this.#hopContext, facts));
  }

  #keep(key: string, d: OutboundDestination): OutboundDestination {
    if (this.#discovered.size >= MAX_DISCOVERED) {
      const [oldestKey, oldest] = this.#discovered.entries().next().value!;
      this.#discovered.delete(oldestKey);
      void oldest.close();
    }
    this.#discovered.set(key, d);
    return d;
  }

  /** Every destination used so far (drain closes their pools). */
  destinations(): Iterable<OutboundDestination> {
    return [...this.#destinations.values(), ...this.#discovered.values()];
  }

  #destination(route: Route): OutboundDestination {
    const key = `${route.kind}:${route.host}:${route.port}`;
    let d = this.#destinations.get(key);
    if (d === undefined) {
      d = route.kind === 'mesh' ? this.#mesh(route.destination) : this.#plain(route.host, route.port);
      this.#destinations.set(key, d);
    }
    return d;
  }

  #mesh(d: MeshDestination): OutboundDestination {
    const who = d.expected.spiffeId ?? `trust domain ${d.expected.trustDomains?.join('|')}`;
    const where = { label: `peer sidecar for ${d.host}:${d.port} (${who})`, host: d.address.host, port: d.address.port };
    const pin = { expected: d.expected };
    return new OutboundDestination(meshTarget(this.#tls, where, pin, 'http/1.1', this.#handshakeFailed), meshTarget(this.#tls, where, pin, 'h2', this.#handshakeFailed), this.#hopContext, factsFromConfig(d.address.host, d.port, d.expected));
  }

  #plain(host: string, port: number): OutboundDestination {
    const target: NextHopTarget = { label: `plaintext destination ${host}:${port}`, host, port };
    return new OutboundDestination(target, target, this.#hopContext, factsFromConfig(host, port, null));
  }
}

/**
 * One destination as the forward step reaches it: an HTTP/1.1 keep-alive pool (mTLS with
 * ALPN http/1.1 toward a peer sidecar) and ONE multiplexed HTTP/2 session (ALPN h2; h2c to a
 * plaintext destination) — gRPC needs HTTP/2 end to end (trailers). Upgrade requests get a
 * connection of their own (ALPN http/1.1). Each pool is made on first use.
 */
export class OutboundDestination implements Destination, VerdictHolder {
  readonly tunnel: NextHopTarget;
  /** What the client policy decides on (the name the app used aside), fixed with the destination. */
  readonly facts: DestinationFactsBase;
  /** The client policy's verdict for this destination, cached until a reload or another name (destination-policy.ts). */
  verdict: CachedVerdict | null = null;
  readonly #h2Target: NextHopTarget;
  readonly #hopContext: NextHopContext;
  #http1: NextHop | null = null;
  #h2: H2SessionPool | null = null;

  constructor(http1Target: NextHopTarget, h2Target: NextHopTarget, hopContext: NextHopContext, facts: DestinationFactsBase) {
    this.tunnel = http1Target;
    this.facts = facts;
    this.#h2Target = h2Target;
    this.#hopContext = hopContext;
  }

  http1(_caller: string | null): NextHop {
    if (this.#http1 === null) {
      const t = this.tunnel;
      this.#http1 = { pool: createUpstreamPool(t, this.#hopContext), label: `${t.label}${t.tlsOptions ? ` at ${t.host}:${t.port}` : ''}` };
    }
    return this.#http1;
  }

  /** The app chose HTTP/2 (h2c prior knowledge); its streams stay HTTP/2 to the destination. */
  streamsOverH2(_grpc: boolean): boolean {
    return true;
  }

  h2(): H2SessionPool {
    return (this.#h2 ??= new H2SessionPool(this.#h2Target, this.#hopContext));
  }

  /** Outbound, the app is the only caller: no per-caller share. */
  admitStream(_caller: string | null, _stream: http2.ServerHttp2Stream): ProxyError | null {
    return null;
  }

  async close(): Promise<void> {
    this.#h2?.destroy();
    if (this.#http1 !== null) await this.#http1.pool.destroy();
  }
}

/**
 * An absolute-form target (`GET http://host:port/path`, HTTP_PROXY mode): the URI's authority
 * routes, so a Host naming anything else is a 400 (the next hop and the app would read the
 * Host); without a Host (HTTP/1.0) the URI's authority is sent as Host (RFC 9112 §3.2.2).
 * Only http:// — TLS from the app would be opaque to the sidecar.
 */
function absoluteForm(head: Http1Head): { authority: string; path: string } | ProxyError {
  const target = head.target;
  if (!target.startsWith('http://')) {
    return new ProxyError('MESHLET_BAD_REQUEST', `unsupported request target ${JSON.stringify(target.slice(0, 100))}: only origin-form or http:// absolute-form`);
  }
  const slash = target.indexOf('/', 7);
  const authority = slash === -1 ? target.slice(7) : target.slice(7, slash);
  const path = slash === -1 ? '/' : target.slice(slash);
  const host = head.authority;
  if (host === '') {
    if (authority !== '') head.forward.headers.push('host', authority);
  } else if (!sameHttpAuthority(host, authority)) {
    return malformedRequest(`Host ${quoted(host)} disagrees with the absolute-form target's authority ${quoted(authority)}; RFC 9112 §3.2.2`, true);
  }
  return { authority, path };
}

/** Host and an http:// URI's authority name the same origin: case-insensitive, `:80` implied (RFC 9110 §4.2.3). */
function sameHttpAuthority(a: string, b: string): boolean {
  if (a.length === b.length) return a.toLowerCase() === b.toLowerCase();
  const [shorter, longer] = a.length < b.length ? [a, b] : [b, a];
  return longer.length === shorter.length + 3 && longer.endsWith(':80') && longer.slice(0, -3).toLowerCase() === shorter.toLowerCase();
}

/** The Service of a destination's facts as part of its cache key ('' for none). */
function serviceKey(facts: DestinationFactsBase): string {
  return facts.service === null ? '' : `${facts.service.name}.${facts.service.namespace}`;
}

/**
 * What inet_aton reads as an IPv4 address but isIP() does not: one to four parts, each decimal,
 * octal (leading 0) or hex (0x), with at least one not a plain canonical decimal octet — or fewer
 * than four parts. A canonical dotted quad never matches (isIP() takes it); no DNS name is all
 * numeric (RFC 3696 §2: a top-level domain is never all digits), so no name is lost.
 */
const LEGACY_NUMERIC_IPV4 = /^(?!(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$)(?:0x[0-9a-f]*|\d+)(?:\.(?:0x[0-9a-f]*|\d+)){0,3}\.?$/;
