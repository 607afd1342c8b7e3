import { isIPv4, isIPv6 } from 'node:net';

/**
 * A CIDR as NetworkPolicy's ipBlock should hold it: the network address with no host bits
 * (`10.1.2.3/8` -> `10.0.0.0/8`), IPv6 in its shortest form. The API server warns about (and,
 * with strict IP validation, refuses) a CIDR whose host bits are set, and a reader of the
 * output should see the network that is actually allowed. null: not a CIDR.
 */
export function canonicalCidr(raw: string): string | null {
  const slash = raw.lastIndexOf('/');
  if (slash <= 0 || !/^\d{1,3}$/.test(raw.slice(slash + 1))) return null;
  const address = raw.slice(0, slash);
  const bits = Number(raw.slice(slash + 1));
  if (isIPv4(address)) {
    if (bits > 32) return null;
    const n = address.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
    const net = mask(n, bits, 32);
    return `${[24n, 16n, 8n, 0n].map((s) => String((net >> s) & 255n)).join('.')}/${bits}`;
  }
  if (isIPv6(address) && !address.includes('%') && !address.includes('.')) {
    if (bits > 128) return null;
    const net = mask(ipv6ToBigInt(address), bits, 128);
    return `${bigIntToIpv6(net)}/${bits}`;
  }
  return null;
}

function mask(n: bigint, bits: number, width: number): bigint {
  const hostBits = BigInt(width - bits);
  return (n >> hostBits) << hostBits;
}

function ipv6ToBigInt(address: string): bigint {
  const [head, tail] = address.includes('::') ? address.split('::') : [address, undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

/** RFC 5952: lower case, no leading zeros, the longest run (of two or more) of zero groups as `::`. */
function bigIntToIpv6(n: bigint): string {
  const groups = Array.from({ length: 8 }, (_, i) => Number((n >> BigInt((7 - i) * 16)) & 0xffffn));
  let best = { start: -1, len: 0 };
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > best.len) best = { start: i, len: j - i };
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best.len < 2) return hex.join(':');
  return `${hex.slice(0, best.start).join(':')}::${hex.slice(best.start + best.len).join(':')}`;
}
