import { isIPv4, isIPv6 } from 'node:net';

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
