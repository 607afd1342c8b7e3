import { describe, expect, it } from 'vitest';
import { SidecarMetrics } from '../../../src/data-plane/metrics/sidecar-metrics.ts';
import { compilePolicy } from '../../../src/data-plane/policy/compile.ts';
import { parsePolicy } from '../../../src/data-plane/policy/parse.ts';
import { named, scrape } from './scrape.ts';

const P = 'spiffe://cluster.local/ns/web/sa/frontend';

function policyWithRoutes(n: number) {
  const routes = Array.from({ length: n }, (_, i) => `        - name: r${i}\n          methods: [GET]\n          path: { prefix: /r${i} }\n          callers: [{ spiffeId: ${P} }]\n`).join('');
  const parsed = parsePolicy(`apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
spec:
  servers:
    - name: orders
      selector: { serviceAccount: orders }
      ports: [{ port: 8080, protocol: http }]
      routes:
${routes}`);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  return compilePolicy(parsed.policy, { self: { namespace: 'shop', serviceAccount: 'orders' }, meshDefault: 'deny' });
}

describe('series made ahead for a policy (SidecarMetrics.policyApplied)', () => {
  it('stay within the route cap, never as "other", and leave real traffic its own values', async () => {
    const m = new SidecarMetrics({ processMetrics: false, routeCap: 2 });
    m.policyApplied(policyWithRoutes(3));
    const routes = new Set(named(await scrape(m.registry), 'meshlet_requests_total').map((s) => s.labels.route));
    expect([...routes].sort()).toEqual(['r0', 'r1']);
    expect(m.requests.routes.overflowed).toBe(0);
    // A real request on a made-ahead route keeps its name; past the cap, "other" as before.
    m.requests.record('inbound', P, 'r1', 'GET', 200, null, 'allow', 0.001, 10, 10);
    m.requests.record('inbound', P, 'r2', 'GET', 200, null, 'allow', 0.001, 10, 10);
    const counted = named(await scrape(m.registry), 'meshlet_requests_total').filter((s) => s.value > 0).map((s) => s.labels.route).sort();
    expect(counted).toEqual(['other', 'r1']);
  });

  it('make no request series when per-request metrics are off', async () => {
    const m = new SidecarMetrics({ processMetrics: false });
    m.policyApplied(policyWithRoutes(1), { requestSeries: false });
    const s = await scrape(m.registry);
    expect(named(s, 'meshlet_requests_total')).toEqual([]);
    expect(named(s, 'meshlet_authz_decisions_total')).toHaveLength(3);
  });
});
