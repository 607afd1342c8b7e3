// The egress half of `meshlet policy netpol` (docs/network-policy.md "Egress", "Ports"): DNS and
// the identity service always, each destination kind as the docs' table says, the API server
// only where a client names it, and egress left alone where the L7 policy leaves it open.
import { describe, expect, it } from 'vitest';
import { ADMIN_ANYWHERE, ANYWHERE_BLOCKS, DNS_RULE, doc, generate, IDENTITY_RULE, ns, policyFrom, sa, tcp } from './support.ts';

const client = (destinations: string, extra = '') =>
  policyFrom(
    doc(`  clients:
    - name: orders
      selector: { serviceAccount: orders }
${extra}      destinations:
${destinations}`),
  );

describe('destinations become egress rules', () => {
  it('DNS and the identity service first; identities, namespaces and Services on every port, with a note about the ports', () => {
    const r = generate(
      client(`        - { name: payments, spiffeId: spiffe://cluster.local/ns/shop/sa/payments, ports: [80] }
        - { name: ops, namespace: ops }
        - { name: catalog, service: catalog }
        - { name: search, service: search, namespace: web, ports: [9200] }
`),
    );
    expect(r.warnings).toEqual([]);
    const np = r.networkPolicies[0]!;
    expect(np.metadata.name).toBe('meshlet-orders-orders');
    expect(np.spec.podSelector).toEqual({ matchLabels: { 'meshlet.io/service-account': 'orders' } });
    // A client and no server, mesh default deny: ingress isolated to the admin port.
    expect(np.spec.policyTypes).toEqual(['Ingress', 'Egress']);
    expect(np.spec.ingress).toEqual([ADMIN_ANYWHERE]);
    expect(np.spec.egress).toEqual([DNS_RULE, IDENTITY_RULE, { to: [sa('shop', 'payments'), ns('ops'), ns('shop'), ns('web')] }]);
    const notes = np.metadata.annotations['meshlet.io/netpol-notes']!;
    expect(notes).toContain('destination "payments": the pods of ServiceAccount shop/payments on every port (its port 80 is the port the app dials');
    expect(notes).toContain('destination "catalog": Service shop/catalog: every pod of namespace shop (a NetworkPolicy cannot name a Service');
    expect(notes).toContain('destination "search": namespace web on every port');
  });

  it('cidr: an ipBlock on its ports, written as its network; no ports: every port', () => {
    const np = generate(
      client(`        - { name: db, cidr: 10.20.3.4/16, ports: [5432] }
        - { name: v6, cidr: "fd00:0:0:0::1/64" }
`),
    ).networkPolicies[0]!;
    expect(np.spec.egress).toEqual([DNS_RULE, IDENTITY_RULE, { to: [{ ipBlock: { cidr: '10.20.0.0/16' } }], ports: tcp(5432) }, { to: [{ ipBlock: { cidr: 'fd00::/64' } }] }]);
    expect(np.metadata.annotations['meshlet.io/netpol-notes']).toContain('destination "db": 10.20.3.4/16 written as its network 10.20.0.0/16');
  });

  it('host: every address on its ports, and a warning; without ports, every port and a louder warning', () => {
    const r = generate(
      client(`        - { name: stripe, host: api.stripe.com, ports: [443] }
        - { name: anything, host: "*.example.com" }
`),
    );
    const np = r.networkPolicies[0]!;
    // Every address on every port (the second) covers every address on 443: one rule.
    expect(np.spec.egress).toEqual([DNS_RULE, IDENTITY_RULE, { to: ANYWHERE_BLOCKS }]);
    const withPorts = generate(client('        - { name: stripe, host: api.stripe.com, ports: [443] }\n')).networkPolicies[0]!;
    expect(withPorts.spec.egress).toEqual([DNS_RULE, IDENTITY_RULE, { to: ANYWHERE_BLOCKS, ports: tcp(443) }]);
    expect(r.warnings).toEqual([
      'test.yaml: client "orders" destination "stripe": host api.stripe.com cannot be named by a NetworkPolicy: egress to every address on port 443; the sidecar still checks the name',
      'test.yaml: client "orders" destination "anything": host *.example.com cannot be named by a NetworkPolicy: egress to every address on EVERY port (the destination lists no ports; list them to narrow this); the sidecar still checks the name',
    ]);
  });

  it('another trust domain: every address on its ports; the mesh trust domain and anyAuthenticated: every pod', () => {
    const np = generate(
      client(`        - { name: partner, trustDomain: partner.example, ports: [9443] }
        - { name: partner-ns, namespace: billing, trustDomain: partner.example, ports: [9443] }
        - { name: mesh, trustDomain: cluster.local, ports: [80] }
`),
    ).networkPolicies[0]!;
    expect(np.spec.egress).toEqual([DNS_RULE, IDENTITY_RULE, { to: ANYWHERE_BLOCKS, ports: tcp(9443) }, { to: [{ namespaceSelector: {} }] }]);
    const any = generate(client('        - { name: any, anyAuthenticated: true }\n')).networkPolicies[0]!;
    expect(any.spec.egress).toEqual([DNS_RULE, IDENTITY_RULE, { to: [{ namespaceSelector: {} }] }]);
    expect(any.metadata.annotations['meshlet.io/netpol-notes']).toContain('a meshed destination outside the cluster (federation) needs a trustDomain or cidr destination here');
  });

  it('default all-authenticated: every pod of the cluster, which covers the pod and namespace peers on every port', () => {
    const np = generate(
      client(
        `        - { name: payments, spiffeId: spiffe://cluster.local/ns/shop/sa/payments }
        - { name: db, cidr: 10.20.0.0/16 }
`,
        '      default: all-authenticated\n',
      ),
    ).networkPolicies[0]!;
    expect(np.spec.egress).toEqual([DNS_RULE, IDENTITY_RULE, { to: [{ ipBlock: { cidr: '10.20.0.0/16' } }, { namespaceSelector: {} }] }]);
  });

  it('the API server: blocked with a warning without --api-server-cidr; with it, those addresses on 443 and 6443', () => {
    const policy = client('        - { name: api, service: kubernetes, namespace: default }\n');
    const without = generate(policy);
    expect(without.networkPolicies[0]!.spec.egress).toEqual([DNS_RULE, IDENTITY_RULE]);
    expect(without.warnings).toEqual([
      'test.yaml: client "orders" destination "api" is the API server (Service default/kubernetes), whose endpoints are not pods: the generated policy blocks it; pass --api-server-cidr with its addresses',
    ]);
    const withCidr = generate(policy, { apiServerCidrs: ['192.168.1.10/32'] });
    expect(withCidr.warnings).toEqual([]);
    expect(withCidr.networkPolicies[0]!.spec.egress).toEqual([DNS_RULE, IDENTITY_RULE, { to: [{ ipBlock: { cidr: '192.168.1.10/32' } }], ports: tcp(443, 6443) }]);
    // Only the client that names it: the sidecar itself never calls the API server.
    const other = generate(client('        - { name: ops, namespace: ops }\n'), { apiServerCidrs: ['192.168.1.10/32'] });
    expect(JSON.stringify(other.networkPolicies[0]!.spec.egress)).not.toContain('192.168.1.10');
  });

  it('destinations on the same ports share one rule, the identity service included', () => {
    const np = generate(client('        - { name: partner-db, cidr: 192.0.2.0/24, ports: [8443] }\n')).networkPolicies[0]!;
    expect(np.spec.egress).toEqual([DNS_RULE, { to: [...IDENTITY_RULE.to, { ipBlock: { cidr: '192.0.2.0/24' } }], ports: tcp(8443) }]);
  });

  it('--control-plane-namespace moves the identity service rule', () => {
    const np = generate(client('        - { name: ops, namespace: ops }\n'), { controlPlaneNamespace: 'mesh' }).networkPolicies[0]!;
    expect(np.spec.egress![1]!.to).toEqual([{ ...ns('mesh'), podSelector: { matchLabels: { 'app.kubernetes.io/name': 'meshlet-identity' } } }]);
  });
});

describe('when egress is left alone', () => {
  it('a client in audit (default or mode): every destination allowed, Egress not in policyTypes', () => {
    for (const extra of ['      default: audit\n', '      mode: audit\n']) {
      const np = generate(client('        - { name: ops, namespace: ops }\n', extra)).networkPolicies[0]!;
      expect(np.spec.policyTypes).toEqual(['Ingress']);
      expect(np.spec.egress).toBeUndefined();
      expect(np.metadata.annotations['meshlet.io/netpol-notes']).toMatch(/egress not restricted: client "orders" (is in mode audit|has default audit)/);
    }
  });

  it('a server with no client entry keeps its egress, unless --default-deny-egress', () => {
    const policy = policyFrom(
      doc(`  servers:
    - name: orders
      selector: { serviceAccount: orders }
      default: deny
      ports: [{ port: 8080, protocol: http }]
      routes: [{ name: a, callers: [{ namespace: web }] }]
`),
    );
    const open = generate(policy).networkPolicies[0]!;
    expect(open.spec.policyTypes).toEqual(['Ingress']);
    expect(open.metadata.annotations['meshlet.io/netpol-notes']).toContain('egress not restricted: no client entry selects these pods');
    const closed = generate(policy, { defaultDenyEgress: true }).networkPolicies[0]!;
    expect(closed.spec.policyTypes).toEqual(['Ingress', 'Egress']);
    expect(closed.spec.egress).toEqual([DNS_RULE, IDENTITY_RULE]);
  });

  it('a client-only workload under a mesh default other than deny: ingress left alone', () => {
    const np = generate(client('        - { name: ops, namespace: ops }\n'), { meshDefault: 'all-authenticated' }).networkPolicies[0]!;
    expect(np.spec.policyTypes).toEqual(['Egress']);
    expect(np.metadata.annotations['meshlet.io/netpol-notes']).toContain('ingress not restricted: no server entry selects these pods, so the mesh default (all-authenticated) decides their callers');
  });
});

describe('a server and a client with the same selector', () => {
  it('share one NetworkPolicy with both directions; different selectors get one each', () => {
    const policy = policyFrom(
      doc(`  servers:
    - name: orders
      selector: { serviceAccount: orders }
      default: deny
      ports: [{ port: 8080, protocol: http }]
      routes: [{ name: a, callers: [{ namespace: web }] }]
  clients:
    - name: orders-out
      selector: { serviceAccount: orders }
      destinations: [{ name: ops, namespace: ops }]
    - name: worker
      selector: { matchLabels: { app: worker } }
      destinations: [{ name: db, cidr: 10.0.0.0/8, ports: [5432] }]
`),
    );
    const r = generate(policy);
    expect(r.networkPolicies.map((n) => [n.metadata.name, n.spec.policyTypes, n.spec.podSelector])).toEqual([
      ['meshlet-orders-orders-orders-out', ['Ingress', 'Egress'], { matchLabels: { 'meshlet.io/service-account': 'orders' } }],
      ['meshlet-orders-worker', ['Ingress', 'Egress'], { matchLabels: { app: 'worker' } }],
    ]);
    expect(r.networkPolicies[0]!.metadata.annotations['meshlet.io/netpol-source']).toBe('test.yaml: server "orders", client "orders-out"');
    expect(r.networkPolicies[0]!.spec.egress).toEqual([DNS_RULE, IDENTITY_RULE, { to: [ns('ops')] }]);
  });
});
