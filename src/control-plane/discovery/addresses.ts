import { BlockList, isIPv4 } from 'node:net';
import { canonicalIp } from '../../common/net/ip.ts';

export { canonicalIp };

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
