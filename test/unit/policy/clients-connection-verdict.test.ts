import { describe, expect, it } from 'vitest';
import { compileClient, type DestinationFacts } from '../../../src/data-plane/policy/client-policy.ts';
import { parsePolicy } from '../../../src/data-plane/policy/parse.ts';
import { DestinationPolicy } from '../../../src/data-plane/proxy/outbound/destination-policy.ts';

/**
 * The verdict of one TLS or opaque TCP connection (DestinationPolicy.connection): `allow-by-name`
 * exactly when the allow rests on the name alone — the proxy then dials the name, not the address
 * the app chose (test/integration/egress-policy/sni-spoofing.test.ts has it on real sockets).
 */
function policyWith(destinations: string, extra = '') {
  const r = parsePolicy(`apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
spec:
  clients:
    - name: frontend
      selector: { serviceAccount: frontend }
${extra}      destinations:
${destinations}`, 'p.yaml');
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  const rules = compileClient(r.policy, { namespace: 'web', serviceAccount: 'frontend' }, 'allow');
  return new DestinationPolicy({ current: () => rules, series: () => ({ value: 0 }), self: () => 'spiffe://cluster.local/ns/web/sa/frontend' });
}

const tlsTo = (address: string, name: string | null, f: Partial<DestinationFacts> = {}): DestinationFacts => ({ name, address, port: 443, meshed: false, identities: [], trustDomains: [], service: null, ...f });

describe('DestinationPolicy.connection', () => {
  const policy = policyWith(`        - { name: stripe, host: api.stripe.com }
        - { name: office, cidr: 192.0.2.0/24 }
        - { name: orders, spiffeId: spiffe://cluster.local/ns/shop/sa/orders }
`);

  it('a host entry alone: allow-by-name', () => expect(policy.connection(tlsTo('203.0.113.9', 'api.stripe.com'))).toBe('allow-by-name'));
  it('a host entry, and a cidr entry allows the address too: allow (dialled as the app chose)', () => expect(policy.connection(tlsTo('192.0.2.7', 'api.stripe.com'))).toBe('allow'));
  it('an identity entry: allow', () => expect(policy.connection(tlsTo('10.0.0.1', 'whatever', { meshed: true, identities: ['spiffe://cluster.local/ns/shop/sa/orders'] }))).toBe('allow'));
  it('no entry: deny', () => expect(policy.connection(tlsTo('203.0.113.9', 'evil.example'))).toBe('deny'));
  it('a name the sidecar dials anyway (a MESHLET_OUTBOUND_TCP mapping): allow', () => expect(policy.connection(tlsTo('203.0.113.9', 'api.stripe.com'), true)).toBe('allow'));

  it('a client in audit mode enforces nothing: allow, also for a host entry', () => {
    const audit = policyWith('        - { name: stripe, host: api.stripe.com }\n', '      mode: audit\n');
    expect(audit.connection(tlsTo('203.0.113.9', 'api.stripe.com'))).toBe('allow-by-name');
    expect(audit.connection(tlsTo('203.0.113.9', 'evil.example'))).toBe('allow');
  });

  it('default all-authenticated: a meshed destination allowed by a host entry is allowed without the name', () => {
    const p = policyWith('        - { name: stripe, host: api.stripe.com }\n', '      default: all-authenticated\n');
    expect(p.connection(tlsTo('10.0.0.1', 'api.stripe.com', { meshed: true, identities: ['spiffe://cluster.local/ns/x/sa/y'] }))).toBe('allow');
    expect(p.connection(tlsTo('203.0.113.9', 'api.stripe.com'))).toBe('allow-by-name');
  });
});
