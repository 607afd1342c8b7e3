// The ingress half of `meshlet policy netpol` (docs/network-policy.md "Ingress", "The admin
// port"): each caller kind becomes the peer the docs name, or every source where L3/L4 cannot
// tell; defaults and modes that admit everyone leave ingress alone.
import { describe, expect, it } from 'vitest';
import { ADMIN_ANYWHERE, doc, generate, ns, policyFrom, sa, tcp } from './support.ts';

const server = (opts: { default?: string; mode?: string; routes: string; ports?: string; selector?: string }) =>
  doc(`  servers:
    - name: orders
      selector:
        ${opts.selector ?? 'serviceAccount: orders'}
${opts.default ? `      default: ${opts.default}\n` : ''}${opts.mode ? `      mode: ${opts.mode}\n` : ''}      ports:
${opts.ports ?? '        - { port: 8080, protocol: http }\n        - { port: 9090, protocol: grpc }\n'}      routes:
${opts.routes}`);

describe('callers become peers', () => {
  it('spiffeId -> its ServiceAccount label in its namespace; namespace -> the namespace; the admin port first', () => {
    const r = generate(
      policyFrom(
        server({
          default: 'deny',
          routes: `        - name: list
          port: 8080
          path: { prefix: /orders }
          callers:
            - spiffeId: spiffe://cluster.local/ns/web/sa/frontend
            - namespace: ops
`,
        }),
      ),
    );
    expect(r.warnings).toEqual([]);
    expect(r.networkPolicies).toHaveLength(1);
    const np = r.networkPolicies[0]!;
    expect(np.metadata.name).toBe('meshlet-orders-orders');
    expect(np.metadata.namespace).toBe('shop');
    expect(np.spec.podSelector).toEqual({ matchLabels: { 'meshlet.io/service-account': 'orders' } });
    expect(np.spec.policyTypes).toEqual(['Ingress']);
    // Port 9090 has no route: closed (no rule), and the notes say so.
    expect(np.spec.ingress).toEqual([ADMIN_ANYWHERE, { from: [ns('ops'), sa('web', 'frontend')], ports: tcp(8080) }]);
    expect(np.metadata.annotations['meshlet.io/netpol-notes']).toContain('port 9090: no route lets any caller in, so no rule opens it');
  });

  it('a caller in a namespace that is also allowed whole is covered by it; the mesh trust domain is every namespace', () => {
    const r = generate(
      policyFrom(
        server({
          default: 'deny',
          routes: `        - name: a
          port: 8080
          callers:
            - spiffeId: spiffe://cluster.local/ns/ops/sa/tool
            - namespace: ops
        - name: b
          port: 9090
          callers:
            - namespace: web
            - trustDomain: cluster.local
`,
        }),
      ),
    );
    expect(r.networkPolicies[0]!.spec.ingress).toEqual([ADMIN_ANYWHERE, { from: [ns('ops')], ports: tcp(8080) }, { from: [{ namespaceSelector: {} }], ports: tcp(9090) }]);
  });

  it('ports with the same callers share one rule; a route without port applies to every declared port', () => {
    const r = generate(
      policyFrom(
        server({
          default: 'deny',
          routes: `        - name: everywhere
          callers:
            - namespace: web
`,
        }),
      ),
    );
    expect(r.networkPolicies[0]!.spec.ingress).toEqual([ADMIN_ANYWHERE, { from: [ns('web')], ports: tcp(8080, 9090) }]);
  });

  for (const [caller, why] of [
    ['anyAuthenticated: true', 'caller anyAuthenticated'],
    ['trustDomain: partner.example', 'callers of trust domain partner.example come from outside this cluster'],
    ['spiffeId: spiffe://partner.example/ns/web/sa/frontend', 'is not a workload of trust domain cluster.local'],
    ['spiffeId: spiffe://cluster.local/vm/billing', 'is not a workload of trust domain cluster.local'],
    ['{ namespace: web, trustDomain: partner.example }', 'caller namespace web of trust domain partner.example is not in this cluster'],
  ] as const) {
    it(`${caller}: the port is open to every source, and the notes say why`, () => {
      const r = generate(
        policyFrom(
          server({
            default: 'deny',
            routes: `        - name: r
          port: 9090
          callers:
            - ${caller}
            - namespace: web
`,
          }),
        ),
      );
      const np = r.networkPolicies[0]!;
      // No `from`: every source, pods of any namespace and addresses outside the cluster.
      expect(np.spec.ingress).toEqual([ADMIN_ANYWHERE, { ports: tcp(9090) }]);
      expect(np.metadata.annotations['meshlet.io/netpol-notes']).toContain(`port 9090: open to every source: `);
      expect(np.metadata.annotations['meshlet.io/netpol-notes']).toContain(why);
    });
  }

  it('unauthenticated on a PERMISSIVE port: every source', () => {
    const r = generate(policyFrom(server({ default: 'deny', ports: '        - { port: 8080, protocol: http }\n', routes: '        - name: r\n          callers:\n            - unauthenticated: true\n' })));
    expect(r.networkPolicies[0]!.spec.ingress).toEqual([ADMIN_ANYWHERE, { ports: tcp(8080) }]);
    expect(r.networkPolicies[0]!.metadata.annotations['meshlet.io/netpol-notes']).toContain('caller unauthenticated');
  });
});

describe('defaults and modes', () => {
  const routes = '        - name: r\n          port: 8080\n          callers:\n            - namespace: web\n';

  for (const d of ['all-authenticated', 'audit']) {
    it(`default ${d} admits callers on every port: ingress is left alone, so no NetworkPolicy at all without a client`, () => {
      const r = generate(policyFrom(server({ default: d, routes })));
      expect(r.networkPolicies).toEqual([]);
      expect(r.warnings).toHaveLength(1);
      expect(r.warnings[0]).toContain(`test.yaml: server "orders": no NetworkPolicy: the L7 policy restricts neither direction at the network level (ingress not restricted: server "orders" has default ${d}`);
    });
  }

  it('mode audit: every request is allowed, ingress left alone', () => {
    const r = generate(policyFrom(server({ default: 'deny', mode: 'audit', routes })), { defaultDenyEgress: true });
    expect(r.networkPolicies[0]!.spec.policyTypes).toEqual(['Egress']);
    expect(r.networkPolicies[0]!.spec.ingress).toBeUndefined();
    expect(r.networkPolicies[0]!.metadata.annotations['meshlet.io/netpol-notes']).toContain('ingress not restricted: server "orders" is in mode audit');
  });

  it('no server default: the mesh default decides (--mesh-default)', () => {
    const policy = policyFrom(server({ routes }));
    expect(generate(policy, { meshDefault: 'deny' }).networkPolicies[0]!.spec.ingress).toEqual([ADMIN_ANYWHERE, { from: [ns('web')], ports: tcp(8080) }]);
    const open = generate(policy, { meshDefault: 'all-authenticated' });
    expect(open.networkPolicies).toEqual([]);
    expect(open.warnings[0]).toContain('has default all-authenticated (the mesh default)');
  });
});

describe('the admin port', () => {
  const routes = '        - name: r\n          port: 8080\n          callers:\n            - namespace: web\n';

  it('open to every source by default, with a note naming the flags that narrow it', () => {
    const np = generate(policyFrom(server({ default: 'deny', routes }))).networkPolicies[0]!;
    expect(np.spec.ingress![0]).toEqual(ADMIN_ANYWHERE);
    expect(np.metadata.annotations['meshlet.io/netpol-notes']).toContain('admin port 15020 (probes, /metrics): open to every source; --probe-cidr and --metrics-namespace narrow it');
  });

  it('--probe-cidr and --metrics-namespace: only those sources (CIDRs as their network)', () => {
    const np = generate(policyFrom(server({ default: 'deny', routes })), { probeCidrs: ['10.0.0.0/16', 'fd00::/64'], metricsNamespaces: ['monitoring'] }).networkPolicies[0]!;
    expect(np.spec.ingress![0]).toEqual({ from: [{ ipBlock: { cidr: '10.0.0.0/16' } }, { ipBlock: { cidr: 'fd00::/64' } }, ns('monitoring')], ports: tcp(15020) });
    expect(np.metadata.annotations['meshlet.io/netpol-notes']).not.toContain('admin port');
  });
});

describe('selecting the workload', () => {
  const routes = '        - name: r\n          port: 8080\n          callers:\n            - namespace: web\n';

  it('matchLabels and serviceAccount together: both, keys sorted', () => {
    const np = generate(policyFrom(server({ default: 'deny', routes, selector: 'serviceAccount: orders\n        matchLabels: { tier: backend, app: orders }' }))).networkPolicies[0]!;
    expect(np.spec.podSelector).toEqual({ matchLabels: { app: 'orders', 'meshlet.io/service-account': 'orders', tier: 'backend' } });
    expect(Object.keys(np.spec.podSelector.matchLabels!)).toEqual(['app', 'meshlet.io/service-account', 'tier']);
  });

  it('a second server with the same selector never applies in the sidecar: left out, with a warning', () => {
    const policy = policyFrom(
      doc(`  servers:
    - name: orders
      selector: { serviceAccount: orders }
      default: deny
      ports: [{ port: 8080, protocol: http }]
      routes: [{ name: a, callers: [{ namespace: web }] }]
    - name: shadow
      selector: { serviceAccount: orders }
      default: deny
      ports: [{ port: 8080, protocol: http }]
      routes: [{ name: b, callers: [{ anyAuthenticated: true }] }]
`),
    );
    const r = generate(policy);
    expect(r.networkPolicies).toHaveLength(1);
    expect(r.networkPolicies[0]!.spec.ingress).toEqual([ADMIN_ANYWHERE, { from: [ns('web')], ports: tcp(8080) }]);
    expect(r.warnings).toContain('test.yaml: server "shadow" has the same selector as server "orders", which the sidecar uses instead: left out');
  });

  it('a ServiceAccount name longer than a label value: no NetworkPolicy for it, a warning', () => {
    const long = 'a'.repeat(64);
    const r = generate(policyFrom(server({ default: 'deny', routes, selector: `serviceAccount: ${long}` })));
    expect(r.networkPolicies).toEqual([]);
    expect(r.warnings).toEqual([`test.yaml: server "orders": ServiceAccount "${long}" is longer than a label value (63 characters), so its pods carry no meshlet.io/service-account label to select: no NetworkPolicy for it`]);
  });

  it('a caller whose ServiceAccount cannot be a label: its whole namespace, with a note', () => {
    const long = 'b'.repeat(64);
    const np = generate(policyFrom(server({ default: 'deny', routes: `        - name: r\n          port: 8080\n          callers:\n            - spiffeId: spiffe://cluster.local/ns/web/sa/${long}\n` }))).networkPolicies[0]!;
    expect(np.spec.ingress).toEqual([ADMIN_ANYWHERE, { from: [ns('web')], ports: tcp(8080) }]);
    expect(np.metadata.annotations['meshlet.io/netpol-notes']).toContain('its ServiceAccount name is too long for a label, so all of namespace web is allowed');
  });
});
