import { FieldError } from '../../src/config/env.ts';

/** `a.b.c.d/n`, octets 0-255, n 0-32: what `iptables -d` accepts for an IPv4 network. */
export function ipv4Cidr(raw: string): string {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(raw);
  if (!m || m.slice(1, 5).some((o) => Number(o) > 255) || Number(m[5]) > 32) throw new FieldError('is not an IPv4 CIDR (a.b.c.d/0-32)');
  return raw;
}
