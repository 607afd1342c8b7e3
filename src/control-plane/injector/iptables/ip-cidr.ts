import { isIPv4, isIPv6 } from 'node:net';
import { FieldError } from '../../../common/config/env.ts';

/** The two rule sets a pod gets: `iptables` (IPv4) and `ip6tables` (IPv6). */
export type IpFamily = 'ipv4' | 'ipv6';

/**
 * `a.b.c.d/0-32` or `<IPv6 address>/0-128`: what `iptables -d` / `ip6tables -d` accept for a
 * network. No zone index (`fe80::1%eth0`): a rule matches addresses, not interfaces.
 */
export function ipCidr(raw: string): string {
  const slash = raw.lastIndexOf('/');
  const address = raw.slice(0, slash);
  const bits = raw.slice(slash + 1);
  if (slash > 0 && /^\d{1,3}$/.test(bits)) {
    if (isIPv4(address) && Number(bits) <= 32) return raw;
    if (isIPv6(address) && !address.includes('%') && Number(bits) <= 128) return raw;
  }
  throw new FieldError('is not an IPv4 CIDR (a.b.c.d/0-32) or an IPv6 CIDR (e.g. fd00:ec2::254/128)');
}

/** Which rule set a CIDR accepted by ipCidr belongs to. */
export function cidrFamily(cidr: string): IpFamily {
  return cidr.includes(':') ? 'ipv6' : 'ipv4';
}
