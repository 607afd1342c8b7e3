import * as net from 'node:net';
import { MeshletError } from '../../../common/errors/meshlet-error.ts';
import { parseSpiffeId } from '../../../common/identity/spiffe-id.ts';
import type { ExpectedPeer } from '../tls-dependency.ts';

/**
 * Where the app's outbound requests may go. Routed by the authority the app named (Host
 * header, :authority, or the absolute URI in HTTP_PROXY mode): a mesh destination is reached
 * over mTLS at its peer sidecar's inbound listener; a configured plaintext destination
 * outside the mesh directly; anything else is either refused or — with `defaultMesh` — dialed
 * as named over mTLS. The sidecar never decides on its own to send plaintext.
 */
export interface MeshDestination {
  /** The name the app uses (service DNS name), lowercase, and its port. */
  readonly host: string;
  readonly port: number;
  /** The peer sidecar's inbound listener. */
  readonly address: { readonly host: string; readonly port: number };
  /** Who must answer there. */
  readonly expected: ExpectedPeer;
}

/** Plaintext destinations outside the mesh. A destination matches when every given list matches. */
export interface PlaintextRule {
  /** Exact names, or `*.suffix` for any name under suffix. */
  readonly hosts?: readonly string[];
  /** CIDRs matched against IP-literal authorities (no DNS lookup is made to route). */
  readonly cidrs?: readonly string[];
  /** Ports; absent = any. */
  readonly ports?: readonly number[];
}

/**
 * Mesh by default (Kubernetes: destinations are not listed anywhere). An authority that
 * matches no mesh destination and no plaintext rule is dialed AS NAMED (host:port through
 * DNS; kube-proxy and the peer pod's iptables bring the connection to the peer sidecar's
 * inbound listener) over mTLS, and the server must be `identities[host:port]` when listed,
 * else match `expected` (typically the accepted trust domains).
 */
export interface DefaultMesh {
  readonly expected: ExpectedPeer;
  /** `host:port` (lowercase host, explicit port) -> the exact SPIFFE ID expected there. */
  readonly identities?: Readonly<Record<string, string>>;
}

export interface DestinationConfig {
  readonly mesh: readonly MeshDestination[];
  readonly plaintext?: readonly PlaintextRule[];
  /** Absent: an unlisted destination is refused (MESHLET_UNKNOWN_DESTINATION). */
  readonly defaultMesh?: DefaultMesh;
}

export type Route =
  | { readonly kind: 'mesh'; readonly destination: MeshDestination; readonly host: string; readonly port: number }
  | { readonly kind: 'plaintext'; readonly host: string; readonly port: number };

export class DestinationConfigError extends MeshletError {
  constructor(message: string) {
    super('MESHLET_DESTINATION_CONFIG_INVALID', message);
  }
}

export interface CompiledRule {
  readonly hosts: readonly string[] | null;
  readonly cidrs: net.BlockList | null;
  readonly ports: ReadonlySet<number> | null;
}

/** Splits an authority ("name", "name:port", "[v6]:port") into lowercase host and port (default 80). Null when malformed. */
export function parseAuthority(authority: string): { host: string; port: number } | null {
  let host: string;
  let portText = '';
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    if (close === -1) return null;
    host = authority.slice(1, close);
    const rest = authority.slice(close + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) return null;
      portText = rest.slice(1);
    }
  } else {
    const colon = authority.lastIndexOf(':');
    host = colon === -1 ? authority : authority.slice(0, colon);
    portText = colon === -1 ? '' : authority.slice(colon + 1);
  }
  if (host === '') return null;
  const port = portText === '' ? 80 : Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535 || !/^\d*$/.test(portText)) return null;
  return { host: host.toLowerCase(), port };
}

// Routing is asked per request; authorities repeat, so resolutions are memoized (bounded).
const MAX_MEMO = 1024;

export class DestinationTable {
  readonly #mesh = new Map<string, MeshDestination>();
  readonly #plaintext: CompiledRule[];
  readonly #memo = new Map<string, Route | null>();
  /** The same, without mesh by default (discovery decides what nothing configures). */
  readonly #memoConfigured = new Map<string, Route | null>();
  readonly #defaultMesh: DefaultMesh | null;
  readonly #identities = new Map<string, string>();

  constructor(config: DestinationConfig) {
    for (const d of config.mesh) {
      requireExpected(d.expected, `mesh destination ${d.host}:${d.port}`);
      this.#mesh.set(`${d.host.toLowerCase()}:${d.port}`, d);
    }
    this.#plaintext = (config.plaintext ?? []).map(compileRule);
    this.#defaultMesh = config.defaultMesh ?? null;
    if (this.#defaultMesh !== null) {
      requireExpected(this.#defaultMesh.expected, 'defaultMesh');
      for (const [authority, id] of Object.entries(this.#defaultMesh.identities ?? {})) {
        const parsed = parseAuthority(authority);
        if (parsed === null || !/:\d+$/.test(authority)) throw new DestinationConfigError(`defaultMesh.identities: ${JSON.stringify(authority)} is not host:port`);
        try {
          parseSpiffeId(id);
        } catch (err) {
          throw new DestinationConfigError(`defaultMesh.identities[${JSON.stringify(authority)}]: ${(err as Error).message}`);
        }
        this.#identities.set(`${parsed.host}:${parsed.port}`, id);
      }
    }
  }

  get meshDestinations(): readonly MeshDestination[] {
    return [...this.#mesh.values()];
  }

  /**
   * The route for an authority, or null: refuse — or, with `discovery`, ask discovery. What is
   * configured comes first: a mesh destination, a plaintext rule, an explicit identity for the
   * name (MESHLET_DESTINATION_IDENTITIES); then, only without discovery, mesh by default.
   */
  resolve(authority: string, discovery = false): Route | null {
    const memo = discovery ? this.#memoConfigured : this.#memo;
    const known = memo.get(authority);
    if (known !== undefined) return known;
    const parsed = parseAuthority(authority);
    let route: Route | null = null;
    if (parsed !== null) {
      const key = `${parsed.host}:${parsed.port}`;
      const destination = this.#mesh.get(key);
      if (destination) route = { kind: 'mesh', destination, host: parsed.host, port: parsed.port };
      else if (this.#plaintext.some((r) => ruleMatches(r, parsed.host, parsed.port))) route = { kind: 'plaintext', host: parsed.host, port: parsed.port };
      else if (this.#defaultMesh !== null && (!discovery || this.#identities.has(key))) route = { kind: 'mesh', destination: this.#dialAsNamed(parsed.host, parsed.port), host: parsed.host, port: parsed.port };
    }
    if (memo.size >= MAX_MEMO) memo.clear();
    memo.set(authority, route);
    return route;
  }

  #dialAsNamed(host: string, port: number): MeshDestination {
    const key = `${host}:${port}`;
    const id = this.#identities.get(key);
    return { host, port, address: { host, port }, expected: id !== undefined ? { spiffeId: id } : this.#defaultMesh!.expected };
  }
}

function requireExpected(expected: ExpectedPeer, what: string): void {
  if (!expected.spiffeId && !(expected.trustDomains && expected.trustDomains.length > 0)) {
    throw new DestinationConfigError(`${what} names no expected identity (spiffeId or trustDomains)`);
  }
}

export function compileRule(rule: PlaintextRule, i: number): CompiledRule {
  if (!rule.hosts?.length && !rule.cidrs?.length) {
    throw new DestinationConfigError(`plaintext rule ${i} names neither hosts nor cidrs (a rule for "everything" is not allowed)`);
  }
  let cidrs: net.BlockList | null = null;
  if (rule.cidrs?.length) {
    cidrs = new net.BlockList();
    for (const cidr of rule.cidrs) {
      const [address, prefixText] = cidr.split('/');
      const family = net.isIP(address ?? '');
      const prefix = Number(prefixText);
      if (family === 0 || !Number.isInteger(prefix) || prefix < 0 || prefix > (family === 4 ? 32 : 128)) {
        throw new DestinationConfigError(`plaintext rule ${i}: ${JSON.stringify(cidr)} is not a CIDR`);
      }
      cidrs.addSubnet(address!, prefix, family === 4 ? 'ipv4' : 'ipv6');
    }
  }
  return {
    hosts: rule.hosts?.length ? rule.hosts.map((h) => h.toLowerCase()) : null,
    cidrs,
    ports: rule.ports?.length ? new Set(rule.ports) : null,
  };
}

export function ruleMatches(rule: CompiledRule, host: string, port: number): boolean {
  if (rule.ports !== null && !rule.ports.has(port)) return false;
  if (rule.hosts !== null && !rule.hosts.some((h) => (h.startsWith('*.') ? host.endsWith(h.slice(1)) : h === host))) return false;
  if (rule.cidrs !== null) {
    const family = net.isIP(host);
    if (family === 0 || !rule.cidrs.check(host, family === 4 ? 'ipv4' : 'ipv6')) return false;
  }
  return true;
}
