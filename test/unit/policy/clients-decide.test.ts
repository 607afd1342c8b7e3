import { describe, expect, it } from 'vitest';
import { compileClient, type DestinationFacts } from '../../../src/data-plane/policy/client-policy.ts';
import { compilePolicy } from '../../../src/data-plane/policy/compile.ts';
import { parsePolicy } from '../../../src/data-plane/policy/parse.ts';
import type { ClientMeshDefault, Policy, WorkloadSelf } from '../../../src/data-plane/policy/types.ts';

/**
 * Issue 16 item 1 — the client side's decisions (docs/policy.md "Clients"): which destination
 * entry matches which facts, the every-identity rule, defaults and modes, the mesh client
 * default, and the exact reasons a refused app sees.
 */
const FRONTEND: WorkloadSelf = { namespace: 'web', serviceAccount: 'frontend', trustDomain: 'cluster.local' };
const ORDERS = 'spiffe://cluster.local/ns/shop/sa/orders';
const ORDERS_ADMIN = 'spiffe://cluster.local/ns/shop/sa/orders-admin';
const OPS = 'spiffe://cluster.local/ns/ops/sa/tool';

function policy(client: string): Policy {
  const r = parsePolicy(`apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: web, namespace: web }
spec:
  clients:
${client}`, 'p.yaml');
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.policy;
}

const FRONTEND_CLIENT = `    - name: frontend
      selector: { serviceAccount: frontend }
      destinations:
        - { name: orders, spiffeId: ${ORDERS}, ports: [8080] }
        - { name: shop, namespace: shop, ports: [9090] }
        - { name: payments, service: payments }
        - { name: ledger, service: ledger, namespace: finance }
        - { name: stripe, host: api.stripe.com, ports: [443] }
        - { name: s3, host: "*.s3.amazonaws.com" }
        - { name: db, cidr: 10.1.0.0/16, ports: [5432] }
`;

function facts(f: Partial<DestinationFacts>): DestinationFacts {
  return { name: null, address: null, port: 80, meshed: false, identities: [], trustDomains: [], service: null, ...f };
}

const rules = compileClient(policy(FRONTEND_CLIENT), FRONTEND, 'allow')!;

describe('matching a destination entry', () => {
  const cases: [string, Partial<DestinationFacts>, string | null][] = [
    ['an exact identity on its port', { name: 'orders.shop', port: 8080, meshed: true, identities: [ORDERS] }, 'orders'],
    ['a namespace: every identity of it', { name: 'shop-api.shop', port: 9090, meshed: true, identities: [ORDERS, ORDERS_ADMIN] }, 'shop'],
    ['a namespace with one foreign identity behind the Service: no match (fail closed)', { name: 'mixed.shop', port: 9090, meshed: true, identities: [ORDERS, OPS] }, null],
    ['an identity rule when only trust domains are known: no match', { name: 'orders.shop', port: 8080, meshed: true, trustDomains: ['cluster.local'] }, null],
    ['a Service in the client\'s own namespace (default)', { name: 'payments', port: 80, service: { name: 'payments', namespace: 'web' } }, 'payments'],
    ['a Service of that name in another namespace: no match', { name: 'payments.pay', port: 80, service: { name: 'payments', namespace: 'pay' } }, null],
    ['a Service with its namespace', { name: 'ledger.finance', port: 80, service: { name: 'ledger', namespace: 'finance' } }, 'ledger'],
    ['an exact host on its port', { name: 'api.stripe.com', port: 443 }, 'stripe'],
    ['a *.suffix host', { name: 'bucket.s3.amazonaws.com', port: 443 }, 's3'],
    ['the suffix itself is not under *.suffix', { name: 's3.amazonaws.com', port: 443 }, null],
    ['a CIDR on its port', { address: '10.1.7.9', port: 5432 }, 'db'],
    ['an address outside the CIDR', { address: '10.2.0.1', port: 5432 }, null],
    ['plain TCP names nothing: a host rule cannot match it', { address: '52.1.1.1', port: 443 }, null],
  ];
  for (const [what, f, expected] of cases) {
    it(what, () => {
      const d = rules.decide(facts(f));
      expect(d.route).toBe(expected);
      expect(d.decision).toBe(expected === null ? 'deny' : 'allow');
      expect(d.client).toBe('frontend');
    });
  }

  it('the reasons name the destination, the client and the entry', () => {
    expect(rules.decide(facts({ name: 'orders.shop', port: 8080, meshed: true, identities: [ORDERS] }))).toEqual({
      decision: 'allow', client: 'frontend', route: 'orders', code: 'destination-allowed', mode: 'enforce', wouldDeny: false,
      reason: `destination orders.shop:8080 (${ORDERS}) is allowed by client "frontend", destination "orders"`,
    });
    expect(rules.decide(facts({ name: 'evil.example', port: 80 }))).toEqual({
      decision: 'deny', client: 'frontend', route: null, code: 'no-destination-matched', mode: 'enforce', wouldDeny: false,
      reason: 'destination evil.example:80 is not among client "frontend"\'s destinations; default is deny',
    });
    // The entry matches but not on this port: the reason says which ports it opens.
    expect(rules.decide(facts({ name: 'api.stripe.com', port: 80 }))).toMatchObject({
      decision: 'deny', code: 'port-not-allowed', reason: 'destination api.stripe.com:80 matches client "frontend"\'s destination "stripe" only on port 443; default is deny',
    });
  });
});

describe('client defaults and modes', () => {
  const meshed = facts({ name: 'anything.other', port: 80, meshed: true, identities: [OPS] });
  const outside = facts({ name: 'example.com', port: 443 });

  it('all-authenticated: any meshed destination, listed ones, nothing else', () => {
    const r = compileClient(policy(`    - name: frontend
      selector: { serviceAccount: frontend }
      default: all-authenticated
      destinations:
        - { name: stripe, host: api.stripe.com }
`), FRONTEND, 'allow')!;
    expect(r.decide(meshed)).toMatchObject({ decision: 'allow', route: null, reason: expect.stringContaining('default all-authenticated allows a meshed destination') });
    expect(r.decide(facts({ name: 'api.stripe.com', port: 443 }))).toMatchObject({ decision: 'allow', route: 'stripe' });
    expect(r.decide(outside)).toMatchObject({ decision: 'deny', reason: expect.stringContaining('allows only meshed destinations') });
  });

  it('default audit: everything allowed, what deny refuses marked would-deny', () => {
    const r = compileClient(policy(`    - name: frontend
      selector: { serviceAccount: frontend }
      default: audit
      destinations: []
`), FRONTEND, 'allow')!;
    expect(r.decide(outside)).toMatchObject({ decision: 'allow', wouldDeny: true, mode: 'audit', reason: 'audit: would deny: destination example.com:443 is not among client "frontend"\'s destinations; default is audit' });
  });

  it('mode audit: a dry run of the whole client (denials become would-deny allows)', () => {
    const r = compileClient(policy(`    - name: frontend
      selector: { serviceAccount: frontend }
      mode: audit
      destinations: []
`), FRONTEND, 'allow')!;
    expect(r.decide(outside)).toMatchObject({ decision: 'allow', wouldDeny: true, reason: expect.stringMatching(/^audit: would deny: .*default is deny$/) });
  });

  it('a client of another namespace (metadata.namespace) or selector does not apply', () => {
    expect(compileClient(policy(FRONTEND_CLIENT), { ...FRONTEND, namespace: 'other' }, 'allow')).toBeNull();
    expect(compileClient(policy(FRONTEND_CLIENT), { ...FRONTEND, serviceAccount: 'admin' }, 'allow')).toBeNull();
  });

  it('labels select like a server selector (all must match)', () => {
    const p = policy(`    - name: by-label
      selector: { matchLabels: { app: web, tier: front } }
      destinations: []
`);
    expect(compileClient(p, { ...FRONTEND, labels: { app: 'web' } }, 'allow')).toBeNull();
    expect(compileClient(p, { ...FRONTEND, labels: { app: 'web', tier: 'front' } }, 'allow')?.name).toBe('by-label');
  });
});

describe('the mesh client default (MESHLET_DEFAULT_CLIENT_POLICY), when no client selects the workload', () => {
  const outside = facts({ name: 'example.com', port: 443 });
  const meshed = facts({ name: 'x', meshed: true, identities: [OPS] });
  const expectations: [ClientMeshDefault, string, string][] = [
    ['deny', 'deny', 'deny'],
    ['all-authenticated', 'deny', 'allow'],
    ['audit', 'allow', 'allow'],
  ];
  for (const [mesh, outsideDecision, meshedDecision] of expectations) {
    it(`${mesh}: outside ${outsideDecision}, meshed ${meshedDecision}, client null, code no-client-policy`, () => {
      const r = compileClient(null, FRONTEND, mesh)!;
      expect(r.name).toBeNull();
      expect(r.decide(outside)).toMatchObject({ decision: outsideDecision, client: null, code: 'no-client-policy' });
      expect(r.decide(meshed).decision).toBe(meshedDecision);
    });
  }

  it('allow (the default): nothing to decide — the compiled policy carries no client side', () => {
    expect(compileClient(null, FRONTEND, 'allow')).toBeNull();
    expect(compilePolicy(null, { self: FRONTEND, meshDefault: 'deny' }).client).toBeNull();
    expect(compilePolicy(policy(FRONTEND_CLIENT), { self: FRONTEND, meshDefault: 'deny' }).client?.name).toBe('frontend');
    expect(compilePolicy(null, { self: FRONTEND, meshDefault: 'deny', meshClientDefault: 'deny' }).client?.decide(outside).reason).toBe(
      'destination example.com:443: no client of the policy selects this workload; the mesh client default (MESHLET_DEFAULT_CLIENT_POLICY) is deny',
    );
  });
});
