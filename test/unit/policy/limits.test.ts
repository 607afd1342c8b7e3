import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { POLICY_LIMITS } from '../../../src/data-plane/policy/limits.ts';
import { parsePolicy, parsePolicyManifest } from '../../../src/data-plane/policy/parse.ts';
import { policySchema } from '../../../src/data-plane/policy/schema.ts';
import type { ParseResult, PolicyError } from '../../../src/data-plane/policy/types.ts';
import { aliasBombPolicy, aliasedRoutesPolicy, bareAliasBomb, deeplyNestedPolicy, goodPolicy, manyRoutesPolicy, overRouteCapPolicy, oversizedPolicy, sharedCallersPolicy } from './hostile-policies.ts';

const FRONTEND = 'spiffe://cluster.local/ns/web/sa/frontend';

function errorsOf(r: ParseResult): PolicyError[] {
  if (r.ok) throw new Error('expected the policy to be refused');
  return r.errors;
}

/** One server whose single route (or port list) is stretched past a cap. */
function stretched(what: 'ports' | 'callers' | 'methods', n: number): string {
  const ports = what === 'ports' ? Array.from({ length: n }, (_, i) => `{ port: ${8000 + i}, protocol: http }`).join(', ') : '{ port: 8080, protocol: http }';
  const callers = what === 'callers' ? Array.from({ length: n }, (_, i) => `{ spiffeId: "spiffe://cluster.local/ns/web/sa/c${i}" }`).join(', ') : '{ namespace: web }';
  const methods = what === 'methods' ? Array.from({ length: n }, (_, i) => `M${String.fromCharCode(65 + (i % 26))}${String.fromCharCode(65 + Math.floor(i / 26))}`).join(', ') : 'GET';
  return `apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
spec:
  servers:
    - name: orders
      selector: { serviceAccount: orders }
      ports: [${ports}]
      routes:
        - { name: r, methods: [${methods}], path: { prefix: /orders }, callers: [${callers}] }
`;
}

describe('policy limits: hostile documents are refused with a coded error, never a throw', () => {
  it('an alias bomb (billion laughs) inside a policy: POLICY_ALIAS_LIMIT at the first alias', () => {
    const errors = errorsOf(parsePolicy(aliasBombPolicy(), 'bomb.yaml'));
    expect(errors).toEqual([
      expect.objectContaining({ severity: 'error', code: 'POLICY_ALIAS_LIMIT', source: 'bomb.yaml', line: 4, col: 10, message: expect.stringContaining(`limit of ${POLICY_LIMITS.maxAliasCount}`) }),
    ]);
  });

  it('a bare alias bomb: the same refusal', () => {
    expect(errorsOf(parsePolicy(bareAliasBomb())).map((e) => [e.code, e.line, e.col])).toEqual([['POLICY_ALIAS_LIMIT', 2, 8]]);
  });

  it(`one anchor reused ${POLICY_LIMITS.maxAliasCount} times is legitimate sharing; once more is refused`, () => {
    const ok = parsePolicy(sharedCallersPolicy(POLICY_LIMITS.maxAliasCount));
    expect(ok.ok).toBe(true);
    expect(errorsOf(parsePolicy(sharedCallersPolicy(POLICY_LIMITS.maxAliasCount + 1)))[0]!.code).toBe('POLICY_ALIAS_LIMIT');
  });

  it(`a document over ${POLICY_LIMITS.maxDocumentBytes} bytes: POLICY_TOO_LARGE naming the cap, before any parsing`, () => {
    const text = oversizedPolicy();
    expect(errorsOf(parsePolicy(text, 'big.yaml'))).toEqual([
      { severity: 'error', code: 'POLICY_TOO_LARGE', source: 'big.yaml', path: '', line: 1, col: 1, message: `the policy document is ${Buffer.byteLength(text)} bytes; the limit is 262144 bytes (256 KiB) per document (docs/policy.md#limits)` },
    ]);
  });

  it(`more than ${POLICY_LIMITS.maxRoutesPerServer} routes in a server: POLICY_LIMIT naming the cap, at the routes list`, () => {
    const errors = errorsOf(parsePolicy(overRouteCapPolicy()));
    expect(errors).toEqual([
      expect.objectContaining({ code: 'POLICY_LIMIT', path: 'spec.servers[0].routes', line: 9, message: 'spec.servers[0].routes has 1001 routes; the limit is 1000 routes per server (docs/policy.md#limits)' }),
    ]);
  });

  it('exactly the per-server route cap is accepted', () => {
    expect(parsePolicy(manyRoutesPolicy(POLICY_LIMITS.maxRoutesPerServer)).ok).toBe(true);
  });

  it(`routes multiplied by aliases past ${POLICY_LIMITS.maxRoutesPerPolicy} per policy: POLICY_LIMIT`, () => {
    const errors = errorsOf(parsePolicy(aliasedRoutesPolicy(3)));
    expect(errors.map((e) => [e.code, e.message])).toEqual([['POLICY_LIMIT', 'spec.servers has 3000 routes; the limit is 2000 routes per policy (all servers) (docs/policy.md#limits)']]);
  });

  it.each([
    ['ports', POLICY_LIMITS.maxPortsPerServer, 'spec.servers[0].ports', 'per server'],
    ['callers', POLICY_LIMITS.maxCallersPerRoute, 'spec.servers[0].routes[0].callers', 'per route'],
    ['methods', POLICY_LIMITS.maxMethodsPerRoute, 'spec.servers[0].routes[0].methods', 'per route'],
  ] as const)('more than the cap of %s (%i): POLICY_LIMIT; the cap itself is accepted', (what, cap, path, per) => {
    expect(parsePolicy(stretched(what, cap)).ok).toBe(true);
    expect(errorsOf(parsePolicy(stretched(what, cap + 1)))).toEqual([expect.objectContaining({ code: 'POLICY_LIMIT', path, message: `${path} has ${cap + 1} ${what}; the limit is ${cap} ${what} ${per} (docs/policy.md#limits)` })]);
  });

  it(`more than ${POLICY_LIMITS.maxServers} servers: POLICY_LIMIT`, () => {
    const servers = Array.from({ length: POLICY_LIMITS.maxServers + 1 }, (_, i) => `    - { name: s${i}, selector: { serviceAccount: s${i} }, ports: [{ port: 8080, protocol: http }], routes: [] }`);
    const text = `apiVersion: policy.meshlet.io/v1alpha1\nkind: AuthorizationPolicy\nspec:\n  servers:\n${servers.join('\n')}\n`;
    expect(errorsOf(parsePolicy(text)).map((e) => e.code)).toEqual(['POLICY_LIMIT']);
  });

  it('nesting deep enough to overflow the parser stack: POLICY_TOO_COMPLEX, not a RangeError', () => {
    const r = parsePolicy(deeplyNestedPolicy(50_000), 'deep.yaml');
    expect(errorsOf(r).every((e) => e.code === 'POLICY_TOO_COMPLEX')).toBe(true);
  });

  it(`findings are capped at ${POLICY_LIMITS.maxReportedFindings}, the rest summarized in one line`, () => {
    const routes = Array.from({ length: 300 }, (_, i) => `        - { name: same, path: { exact: /r/${i} }, callers: [] }`);
    const text = goodPolicy(FRONTEND).replace(/      routes:\n[\s\S]*$/, `      routes:\n${routes.join('\n')}\n`);
    const errors = errorsOf(parsePolicy(text));
    expect(errors).toHaveLength(POLICY_LIMITS.maxReportedFindings + 1);
    expect(errors.at(-1)).toMatchObject({ code: 'POLICY_TOO_MANY_ERRORS', message: '199 more finding(s) not shown (199 error(s)); fix the ones above first' });
  });

  it('a ConfigMap manifest carrying an alias bomb: the error is located in the file, nothing thrown', () => {
    const policy = aliasBombPolicy().replace(/^/gm, '    ');
    const text = `apiVersion: v1\nkind: ConfigMap\nmetadata: { name: orders-policy, namespace: shop }\ndata:\n  policy.yaml: |\n${policy}`;
    const [found] = parsePolicyManifest(text, 'cm.yaml');
    expect(errorsOf(found!.result).map((e) => [e.code, e.source, e.line])).toEqual([['POLICY_ALIAS_LIMIT', 'cm.yaml', 9]]);
  });

  it('the JSON schema carries the same caps (maxItems) for its readers', () => {
    const s = policySchema as unknown as { properties: { spec: { properties: { servers: { maxItems: number } } } }; $defs: Record<string, { properties: Record<string, { maxItems?: number }> }> };
    expect(s.properties.spec.properties.servers.maxItems).toBe(POLICY_LIMITS.maxServers);
    expect(s.$defs.server!.properties.routes!.maxItems).toBe(POLICY_LIMITS.maxRoutesPerServer);
    expect(s.$defs.server!.properties.ports!.maxItems).toBe(POLICY_LIMITS.maxPortsPerServer);
    expect(s.$defs.route!.properties.callers!.maxItems).toBe(POLICY_LIMITS.maxCallersPerRoute);
    expect(s.$defs.route!.properties.methods!.maxItems).toBe(POLICY_LIMITS.maxMethodsPerRoute);
  });

  it('docs/policy.md documents every cap with its value', () => {
    const docs = readFileSync(join(import.meta.dirname, '../../../docs/policy.md'), 'utf8');
    const section = docs.slice(docs.indexOf('## Limits'));
    const n = (x: number) => x.toLocaleString('en-US');
    for (const [name, value] of Object.entries(POLICY_LIMITS)) {
      expect(section, name).toMatch(new RegExp(`\`${name}\`[^\\n]*\\| ${n(value).replace(/,/g, ',?')}`));
    }
  });
});
