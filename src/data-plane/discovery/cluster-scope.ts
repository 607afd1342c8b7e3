import { canonicalIp } from '../../common/net/ip.ts';
import { BlockList, isIPv4, isIPv6 } from 'node:net';

/**
 * Where a destination may be, without asking anyone: inside the cluster (its pod and service
 * CIDRs, a cluster DNS name) or outside. Used only when discovery has no answer (the
 * fail-closed rule, docs/discovery.md "The sidecar client"): inside → refuse, outside → the
 * egress rules. It never says "unmeshed"; only the identity service can.
 *
 * Names are judged as the pod's resolver would try them (ndots 5, search list
 * `<ns>.svc.<domain> svc.<domain> <domain>`): a single label (`orders`), two labels
 * (`orders.shop`: Service `orders` in namespace `shop` is tried before any public name), or a
 * name ending in `.svc` or `.<cluster domain>` may be in the cluster. Three or more labels
 * (`api.example.com`) are judged outside: a pod under a headless Service asked for as
 * `pod.subdomain.ns` is the one in-cluster form this misses, and it still is not sent
 * plaintext by the sidecar (the egress rules pass the app's own bytes through).
 */
export class ClusterScope {
  readonly #cidrs = new BlockList();
  readonly #anyCidr: boolean;
  readonly #domainSuffix: string;
  readonly clusterDomain: string;

  /** `cidrs`: the pod and service CIDRs. None: every IP address counts as inside (fail closed). */
  constructor(options: { clusterDomain: string; cidrs: readonly string[] }) {
    this.clusterDomain = options.clusterDomain.toLowerCase().replace(/\.$/, '');
    this.#domainSuffix = `.${this.clusterDomain}`;
    for (const raw of options.cidrs) {
      const c = parseCidr(raw);
      this.#cidrs.addSubnet(c.network, c.prefix, c.family);
    }
    this.#anyCidr = options.cidrs.length > 0;
  }

  /** Whether `host` (an IP in any spelling, or a DNS name) may be inside the cluster. */
  contains(host: string): boolean {
    const ip = canonicalIp(host);
    if (ip !== undefined) return !this.#anyCidr || this.#cidrs.check(ip, ip.includes(':') ? 'ipv6' : 'ipv4');
    const name = normalizeName(host);
    if (name === '') return true;
    if (name === this.clusterDomain || name.endsWith(this.#domainSuffix) || name.endsWith('.svc')) return true;
    const dots = countDots(name);
    return dots <= 1;
  }
}

function countDots(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) === 46) n++;
  return n;
}

/** A DNS name as a cache key: lowercase, no trailing dot. */
export function normalizeName(host: string): string {
  return host.toLowerCase().replace(/\.$/, '');
}


/** The host as the cache keys it: a canonical IP, or a normalized name. */
export function destinationKey(host: string): string {
  return canonicalIp(host) ?? normalizeName(host);
}

/** `10.244.0.0/16`, `fd00:10:244::/56`. Throws RangeError on anything else. */
export function parseCidr(raw: string): { network: string; prefix: number; family: 'ipv4' | 'ipv6' } {
  const slash = raw.lastIndexOf('/');
  const network = slash > 0 ? canonicalIp(raw.slice(0, slash)) : undefined;
  const bits = raw.slice(slash + 1);
  if (network === undefined || !/^\d{1,3}$/.test(bits)) throw new RangeError(`${JSON.stringify(raw)} is not a CIDR (a.b.c.d/n or an IPv6 prefix)`);
  const family = network.includes(':') ? 'ipv6' : 'ipv4';
  const prefix = Number(bits);
  if (prefix > (family === 'ipv4' ? 32 : 128)) throw new RangeError(`${JSON.stringify(raw)}: the prefix length is out of range`);
  return { network, prefix, family };
}
