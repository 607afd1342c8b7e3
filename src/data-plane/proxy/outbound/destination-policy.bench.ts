/**
 * Micro-benchmark of the client policy on the outbound request path:
 * `node src/data-plane/proxy/outbound/destination-policy.bench.ts [N]`.
 * @bench-quick-args 20000
 * Prints ns per request for DestinationPolicy.request() (docs/policy.md "Clients", "Cost"):
 *  - none:      no client policy in force (MESHLET_DEFAULT_CLIENT_POLICY=allow, no client): one null test
 *  - cachedAllow: a client policy with 64 destinations; the verdict is cached on the destination
 *               (two reference compares, a counter increment, the decision log's flag test)
 *  - cachedDeny: the same for a refused destination (the refusal object is made once and reused;
 *               the decision log is off here: a logged denial costs what docs/decision-log.md says)
 *  - decide:    the verdict made every time (what the first request to a destination pays, and a
 *               TLS or opaque TCP connection): the facts object and a scan of the 64 entries
 * and ns per connection for DestinationPolicy.connection() (the app's own TLS, opaque TCP):
 *  - connection:       allowed by an identity entry (one decision)
 *  - connectionByName: allowed by a host entry only (its SNI): the second decision without the
 *                      name that tells the proxy to dial the name (docs/policy.md "Matching facts")
 */
import { compileClient } from '../../policy/client-policy.ts';
import { parsePolicy } from '../../policy/parse.ts';
import type { Http1Head } from '../pipeline/request-head.ts';
import { DestinationPolicy, factsFromConfig, type VerdictHolder } from './destination-policy.ts';

const N = Number(process.argv[2] ?? 1_000_000);

function nsPer(n: number, fn: (i: number) => void): number {
  for (let i = 0; i < Math.min(n, 50_000); i++) fn(i); // warm up (JIT)
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn(i);
  return Number(process.hrtime.bigint() - start) / n;
}

const destinations = Array.from({ length: 63 }, (_, i) => `        - { name: d${i}, host: svc-${i}.example.com, ports: [443] }\n`).join('');
const parsed = parsePolicy(`apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
spec:
  clients:
    - name: frontend
      selector: { serviceAccount: frontend }
      destinations:
${destinations}        - { name: orders, spiffeId: spiffe://cluster.local/ns/shop/sa/orders, ports: [80] }
`);
if (!parsed.ok) throw new Error(`bench policy does not parse: ${JSON.stringify(parsed.errors)}`);
const rules = compileClient(parsed.policy, { namespace: 'web', serviceAccount: 'frontend', trustDomain: 'cluster.local' }, 'allow');
let current = rules;
const counter = { value: 0 };
const policy = new DestinationPolicy({ current: () => current, series: () => counter, self: () => 'spiffe://cluster.local/ns/web/sa/frontend' });
// Only the decision log reads the head; it is off here.
const head = { protocol: 'http1', method: 'GET' } as unknown as Http1Head;
const allowed: VerdictHolder = { facts: factsFromConfig('10.0.0.7', 80, { spiffeId: 'spiffe://cluster.local/ns/shop/sa/orders' }), verdict: null };
const refused: VerdictHolder = { facts: factsFromConfig('10.0.0.8', 80, { spiffeId: 'spiffe://cluster.local/ns/shop/sa/other' }), verdict: null };

let refusals = 0;
const figures = {
  none: (() => {
    current = null;
    const ns = nsPer(N, () => policy.request(head, allowed, 'orders.shop', '/orders'));
    current = rules;
    return ns;
  })(),
  cachedAllow: nsPer(N, () => policy.request(head, allowed, 'orders.shop', '/orders')),
  cachedDeny: nsPer(N, () => {
    if (policy.request(head, refused, 'other.shop', '/orders') !== null) refusals++;
  }),
  decide: nsPer(N, () => {
    allowed.verdict = null;
    policy.request(head, allowed, 'orders.shop', '/orders');
  }),
  connection: nsPer(N, () => {
    if (policy.connection({ ...allowed.facts, name: 'orders.shop' }) !== 'allow') refusals = -1e9;
  }),
  connectionByName: nsPer(N, () => {
    if (policy.connection({ address: '203.0.113.9', port: 443, meshed: false, identities: [], trustDomains: [], service: null, name: 'svc-0.example.com' }) !== 'allow-by-name') refusals = -1e9;
  }),
};
if (refusals <= 0 || counter.value === 0) throw new Error('the bench decided nothing, or a connection verdict was not the expected one');

const round = (x: number) => +x.toFixed(1);
console.log(JSON.stringify({ iterations: N, destinations: 64, nsPerRequest: Object.fromEntries(Object.entries(figures).map(([k, v]) => [k, round(v)])) }));
