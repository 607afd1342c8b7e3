import { describe, expect, it } from 'vitest';
import { compileClient, type DestinationFacts } from '../../../src/data-plane/policy/client-policy.ts';
import { addressOf } from '../../../src/data-plane/proxy/outbound/destination-policy.ts';
import { parsePolicy } from '../../../src/data-plane/policy/parse.ts';

/**
 * Security regression (issue 16 review): a `cidr` entry matches the addresses of its own family.
 * Node's BlockList checks an IPv4 address against IPv6 rules as its IPv4-mapped form, so before
 * the fix `cidr: ::/0` (meant: any IPv6 address) — or any IPv6 prefix of 80 bits or less that
 * contains ::ffff:0:0/96, such as `::/64` — allowed every IPv4 address too: wider than written,
 * and wider than the NetworkPolicy `meshlet policy netpol` makes of it (an IPv6 ipBlock). An
 * IPv4-mapped IPv6 address is the IPv4 address it maps, in every spelling.
 */
function rulesFor(cidr: string) {
  const r = parsePolicy(`apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
spec:
  clients:
    - name: frontend
      selector: { serviceAccount: frontend }
      destinations:
        - { name: net, cidr: "${cidr}" }
`, 'p.yaml');
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return compileClient(r.policy, { namespace: 'web', serviceAccount: 'frontend' }, 'allow')!;
}

function at(address: string): DestinationFacts {
  return { name: null, address, port: 443, meshed: false, identities: [], trustDomains: [], service: null };
}

describe('an IPv6 cidr entry does not match IPv4 addresses', () => {
  for (const cidr of ['::/0', '::/64', '::/80']) {
    it(`${cidr}: an IPv4 address is refused, an IPv6 one allowed`, () => {
      const rules = rulesFor(cidr);
      expect(rules.decide(at('203.0.113.7')).decision).toBe('deny');
      expect(rules.decide(at('::ffff:203.0.113.7')).decision).toBe('deny');
      expect(rules.decide(at('::ffff:cb00:7107')).decision).toBe('deny');
      expect(rules.decide(at('::1')).decision).toBe('allow');
    });
  }
  it('2001:db8::/32 matches its own addresses only', () => {
    const rules = rulesFor('2001:db8::/32');
    expect(rules.decide(at('2001:db8::5')).decision).toBe('allow');
    expect(rules.decide(at('2001:db9::5')).decision).toBe('deny');
  });
  it('an entry written as IPv4-mapped (inside ::ffff:0:0/96) still names those IPv4 addresses', () => {
    const rules = rulesFor('::ffff:10.0.0.0/104');
    expect(rules.decide(at('10.1.2.3')).decision).toBe('allow');
    expect(rules.decide(at('11.1.2.3')).decision).toBe('deny');
  });
});

describe('an IPv4 cidr entry matches an IPv4 address in every IPv6 spelling', () => {
  const rules = rulesFor('10.0.0.0/8');
  for (const address of ['10.0.0.1', '::ffff:10.0.0.1', '::ffff:a00:1', '0:0:0:0:0:ffff:a00:1']) {
    it(address, () => expect(rules.decide(at(address)).decision).toBe('allow'));
  }
  it('and nothing else', () => expect(rules.decide(at('2001:db8::a00:1')).decision).toBe('deny'));
});

describe('addressOf: the address fact of a Host or dialled address', () => {
  it.each([
    ['[::ffff:a00:1]', '10.0.0.1'],
    ['::ffff:10.0.0.1', '10.0.0.1'],
    ['[0:0:0:0:0:ffff:a00:1]', '10.0.0.1'],
    ['[2001:db8::1]', '2001:db8::1'],
    ['10.0.0.1', '10.0.0.1'],
    ['orders.shop', null],
  ])('%s -> %s', (host, expected) => expect(addressOf(host)).toBe(expected));
});
