import { describe, expect, it } from 'vitest';
import { parsePolicy } from '../../../src/data-plane/policy/parse.ts';
import { POLICY_LIMITS } from '../../../src/data-plane/policy/limits.ts';
import type { PolicyError } from '../../../src/data-plane/policy/types.ts';

/**
 * Issue 16 item 1 — the client side of the language: `spec.clients` parses (alone or with
 * servers), and every mistake `policy check` must name comes back with its code, YAML path and
 * line:col, as on the server side.
 */
const HEAD = `apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: web }
spec:
`;

function errorsOf(text: string): PolicyError[] {
  const r = parsePolicy(text, 'p.yaml');
  if (r.ok) throw new Error(`unexpectedly valid; warnings: ${JSON.stringify(r.warnings)}`);
  return r.errors;
}

function clientsDoc(destinations: string, extra = ''): string {
  return `${HEAD}  clients:
    - name: frontend
      selector: { serviceAccount: frontend }
${extra}      destinations:
${destinations}`;
}

describe('spec.clients parses', () => {
  it('a document of clients only: servers normalized to [], every kind of destination kept', () => {
    const r = parsePolicy(
      clientsDoc(`        - { name: orders, spiffeId: spiffe://cluster.local/ns/shop/sa/orders, ports: [8080] }
        - { name: shop, namespace: shop }
        - { name: partner, trustDomain: partner.example }
        - { name: any-meshed, anyAuthenticated: true }
        - { name: payments, service: payments, namespace: pay }
        - { name: stripe, host: api.stripe.com, ports: [443] }
        - { name: s3, host: "*.s3.amazonaws.com" }
        - { name: db, cidr: 10.1.0.0/16, ports: [5432] }
        - { name: v6, cidr: "fd00::/8" }
`, '      default: all-authenticated\n      mode: audit\n'),
      'p.yaml',
    );
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    expect(r.warnings).toEqual([]);
    expect(r.policy.spec.servers).toEqual([]);
    expect(r.policy.spec.clients![0]!.destinations.map((d) => d.name)).toEqual(['orders', 'shop', 'partner', 'any-meshed', 'payments', 'stripe', 's3', 'db', 'v6']);
    expect(r.policy.spec.clients![0]!.default).toBe('all-authenticated');
  });

  it('servers and clients in one document', () => {
    const r = parsePolicy(`${HEAD}  servers:
    - name: web
      selector: { serviceAccount: frontend }
      ports: [{ port: 8080, protocol: http }]
      routes: []
  clients:
    - name: frontend
      selector: { serviceAccount: frontend }
      destinations: []
`, 'p.yaml');
    expect(r.ok).toBe(true);
  });

  it('neither servers nor clients: one precise error at spec', () => {
    const errors = errorsOf(`${HEAD}  {}\n`);
    expect(errors).toEqual([expect.objectContaining({ code: 'POLICY_SCHEMA', path: 'spec', line: 5, message: 'spec declares neither "servers" nor "clients": a policy needs at least one of the two' })]);
  });
});

describe('spec.clients: every mistake named and located', () => {
  const table: [string, string, { code: string; path: string; line: number; col: number; message: RegExp }][] = [
    ['a destination with no kind', `        - { name: nothing, ports: [80] }\n`, { code: 'POLICY_BAD_DESTINATION', path: 'spec.clients[0].destinations[0]', line: 9, col: 11, message: /exactly one of .*\(found none\)/ }],
    ['a destination with two kinds', `        - { name: two, host: a.example, cidr: 10.0.0.0/8 }\n`, { code: 'POLICY_BAD_DESTINATION', path: 'spec.clients[0].destinations[0]', line: 9, col: 11, message: /\(found host, cidr\)/ }],
    ['a bad CIDR prefix', `        - name: db\n          cidr: 10.0.0.0/33\n`, { code: 'POLICY_BAD_CIDR', path: 'spec.clients[0].destinations[0].cidr', line: 10, col: 17, message: /the prefix length must be 0 to 32/ }],
    ['a CIDR without prefix', `        - name: db\n          cidr: 10.1.2.3\n`, { code: 'POLICY_BAD_CIDR', path: 'spec.clients[0].destinations[0].cidr', line: 10, col: 17, message: /write 10\.1\.2\.3\/32 for one address/ }],
    ['a CIDR that is no address', `        - name: db\n          cidr: ten/8\n`, { code: 'POLICY_BAD_CIDR', path: 'spec.clients[0].destinations[0].cidr', line: 10, col: 17, message: /"ten" is not an IPv4 or IPv6 address/ }],
    ['a host pattern with a * inside', `        - name: api\n          host: "api.*.example.com"\n`, { code: 'POLICY_BAD_HOST', path: 'spec.clients[0].destinations[0].host', line: 10, col: 17, message: /only as the whole first label/ }],
    ['a host that is an IP', `        - name: api\n          host: 10.1.2.3\n`, { code: 'POLICY_BAD_HOST', path: 'spec.clients[0].destinations[0].host', line: 10, col: 17, message: /use cidr: 10\.1\.2\.3\/32/ }],
    ['a host with a bad label', `        - name: api\n          host: "api_v1.example.com"\n`, { code: 'POLICY_BAD_HOST', path: 'spec.clients[0].destinations[0].host', line: 10, col: 17, message: /not a DNS name/ }],
    ['a port out of range', `        - name: api\n          host: api.example.com\n          ports: [70000]\n`, { code: 'POLICY_SCHEMA', path: 'spec.clients[0].destinations[0].ports[0]', line: 11, col: 19, message: /65535/ }],
    ['a bad SPIFFE ID', `        - name: orders\n          spiffeId: spiffe://Cluster.local/ns/shop/sa/orders\n`, { code: 'POLICY_BAD_SPIFFE_ID', path: 'spec.clients[0].destinations[0].spiffeId', line: 10, col: 21, message: /lowercase/ }],
    ['an unknown field', `        - name: api\n          hosts: api.example.com\n`, { code: 'POLICY_SCHEMA', path: 'spec.clients[0].destinations[0].hosts', line: 10, col: 11, message: /unknown field "hosts"/ }],
  ];
  for (const [what, destinations, expected] of table) {
    it(what, () => {
      const errors = errorsOf(clientsDoc(destinations)).filter((e) => e.severity === 'error');
      expect(errors).toEqual([expect.objectContaining({ code: expected.code, path: expected.path, line: expected.line, col: expected.col, source: 'p.yaml' })]);
      expect(errors[0]!.message).toMatch(expected.message);
    });
  }

  it('duplicate client names and duplicate destination names (unique in the document)', () => {
    const errors = errorsOf(`${HEAD}  clients:
    - name: frontend
      selector: { serviceAccount: frontend }
      destinations:
        - { name: orders, namespace: shop }
    - name: frontend
      selector: { serviceAccount: admin }
      destinations:
        - { name: orders, namespace: ops }
`);
    expect(errors.map((e) => [e.code, e.path, e.line])).toEqual([
      ['POLICY_DUPLICATE_CLIENT', 'spec.clients[1].name', 10],
      ['POLICY_DUPLICATE_DESTINATION', 'spec.clients[1].destinations[0].name', 13],
    ]);
    expect(errors[1]!.message).toBe('destination name "orders" is already used by spec.clients[0].destinations[0]');
  });

  it('a client shadowed by an earlier one with the same selector is a warning, not an error', () => {
    const r = parsePolicy(`${HEAD}  clients:
    - name: frontend
      selector: { serviceAccount: frontend }
      destinations: []
    - name: frontend-again
      selector: { serviceAccount: frontend }
      destinations: []
`, 'p.yaml');
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    expect(r.warnings).toEqual([expect.objectContaining({ code: 'POLICY_SHADOWED_CLIENT', path: 'spec.clients[1].selector', line: 10, severity: 'warning' })]);
  });

  it('over the destination cap: POLICY_LIMIT naming the limit, before the schema walks', () => {
    const many = Array.from({ length: POLICY_LIMITS.maxDestinationsPerClient + 1 }, (_, i) => `        - { name: d${i}, anyAuthenticated: true }\n`).join('');
    const errors = errorsOf(clientsDoc(many));
    expect(errors).toEqual([expect.objectContaining({ code: 'POLICY_LIMIT', path: 'spec.clients[0].destinations' })]);
    expect(errors[0]!.message).toContain(`the limit is ${POLICY_LIMITS.maxDestinationsPerClient} destinations per client`);
  });
});
