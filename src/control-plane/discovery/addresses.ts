import { BlockList, isIPv4, isIPv6 } from 'node:net';

/**
 * IP addresses as index keys: one spelling per address, whatever the API server or a caller
 * wrote. IPv4 stays dotted-quad; IPv6 takes the WHATWG URL serialisation (lowercase, longest
 * zero run compressed: RFC 5952); an IPv4-mapped IPv6 address (`::ffff:10.1.2.3`, what a
 * dual-stack socket reports for an IPv4 peer) becomes the IPv4 address. Brackets around an
 * IPv6 literal are accepted; a zone index (`fe80::1%eth0`) is not an address of the cluster.
 */
export function canonicalIp(raw: string): string | undefined {
  let s = raw.trim();
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1);
  if (isIPv4(s)) return s;
  if (!isIPv6(s) || s.includes('%')) return undefined;
  let v6: string;
  try {
    v6 = new URL(`http://[${s}]/`).hostname.slice(1, -1);
  } catch {
    return undefined;
  }
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(v6);
  if (mapped) {
    const hi = parseInt(mapped[1]!, 16);
    const lo = parseInt(mapped[2]!, 16);
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  return v6;
}

export function ipFamily(ip: string): 'ipv4' | 'ipv6' {
  return ip.includes(':') ? 'ipv6' : 'ipv4';
}

/** The cluster's own address ranges (pod and service CIDRs), checked with node's BlockList. */
export class CidrSet {
  readonly #list = new BlockList();
  readonly cidrs: readonly string[];

  /** `cidrs` as ipCidr (injector/iptables/ip-cidr.ts) accepts them: `a.b.c.d/n`, `<v6>/n`. */
  constructor(cidrs: readonly string[]) {
    this.cidrs = [...cidrs];
    for (const cidr of cidrs) {
      const slash = cidr.lastIndexOf('/');
      const network = canonicalIp(cidr.slice(0, slash));
      if (network === undefined) throw new RangeError(`not a CIDR: ${cidr}`);
      this.#list.addSubnet(network, Number(cidr.slice(slash + 1)), ipFamily(network));
    }
  }

  /** `ip` must be canonical (canonicalIp). */
  has(ip: string): boolean {
    return this.#list.check(ip, ipFamily(ip));
  }
}
