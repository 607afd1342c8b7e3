import { describe, expect, it } from 'vitest';
import { compilePolicy } from '../../../src/data-plane/policy/compile.ts';
import { decide } from '../../../src/data-plane/policy/decide.ts';
import { parsePolicy } from '../../../src/data-plane/policy/parse.ts';
import type { DefaultPolicy, Policy, RequestFacts } from '../../../src/data-plane/policy/types.ts';

const FRONTEND = 'spiffe://cluster.local/ns/web/sa/frontend';
const WEB_OTHER = 'spiffe://cluster.local/ns/web/sa/other';
const OPS_ADMIN = 'spiffe://cluster.local/ns/ops/sa/admin';
const FOREIGN = 'spiffe://partner.example/ns/web/sa/frontend';

/** Builds a one-server policy from routes and runs it through the real parser (so it is valid). */
function policyOf(yamlRoutes: string, extra = ''): Policy {
  const text = `apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
spec:
  servers:
    - name: api
      selector: { serviceAccount: api }
${extra}      ports: [{ port: 8080, protocol: http }, { port: 9090, protocol: grpc }, { port: 5432, protocol: tcp }]
      routes:
${yamlRoutes}`;
  const r = parsePolicy(text, 'inline');
  if (!r.ok) throw new Error(JSON.stringify(r.errors, null, 2));
  return r.policy;
}

const self = { namespace: 'shop', serviceAccount: 'api' };
const compile = (p: Policy | null, meshDefault: DefaultPolicy = 'deny') => compilePolicy(p, { self, meshDefault });

const precedence = policyOf(`
        - { name: exact-get, port: 8080, methods: [GET], path: { exact: /a/b }, callers: [{ spiffeId: "${FRONTEND}" }] }
        - { name: exact-any, port: 8080, path: { exact: /a/b }, callers: [{ namespace: ops }] }
        - { name: pattern, port: 8080, path: { pattern: /a/*/c }, callers: [{ namespace: web }] }
        - { name: pattern-wild-first, port: 8080, path: { pattern: /*/x/c }, callers: [{ namespace: ops }] }
        - { name: prefix-a, port: 8080, path: { prefix: /a }, callers: [{ namespace: web }] }
        - { name: prefix-a-b, port: 8080, path: { prefix: /a/b/ }, callers: [{ spiffeId: "${OPS_ADMIN}" }] }
        - { name: prefix-a-b-post, port: 8080, methods: [POST], path: { prefix: /a/b }, callers: [{ spiffeId: "${WEB_OTHER}" }] }
        - { name: root-unscoped, path: { prefix: / }, callers: [{ trustDomain: partner.example }] }
        - { name: root-scoped, port: 8080, methods: [DELETE], path: { prefix: / }, callers: [{ anyAuthenticated: true }] }
        - { name: grpc-method, port: 9090, grpc: { service: shop.v1.Orders, method: Get }, callers: [{ spiffeId: "${FRONTEND}" }] }
        - { name: grpc-service, port: 9090, grpc: { service: shop.v1.Orders }, callers: [{ namespace: ops }] }
        - { name: db, port: 5432, callers: [{ spiffeId: "${OPS_ADMIN}" }] }
`);

interface Case {
  name: string;
  facts: RequestFacts;
  route: string | null;
  decision: 'allow' | 'deny';
}

const cases: Case[] = [
  { name: 'exact path + method beats everything', facts: { peer: FRONTEND, port: 8080, method: 'GET', path: '/a/b' }, route: 'exact-get', decision: 'allow' },
  { name: 'exact path, other method -> the any-method exact route', facts: { peer: FRONTEND, port: 8080, method: 'PUT', path: '/a/b' }, route: 'exact-any', decision: 'deny' },
  { name: 'HEAD is decided as the GET the app runs: the GET-only route, not the any-method one', facts: { peer: OPS_ADMIN, port: 8080, method: 'HEAD', path: '/a/b' }, route: 'exact-get', decision: 'deny' },
  { name: 'the matched route decides: no fall-through to a less specific route that would allow', facts: { peer: WEB_OTHER, port: 8080, method: 'GET', path: '/a/b' }, route: 'exact-get', decision: 'deny' },
  { name: 'pattern beats a longer prefix', facts: { peer: WEB_OTHER, port: 8080, method: 'GET', path: '/a/b/c' }, route: 'pattern', decision: 'allow' },
  { name: 'pattern: a literal segment beats "*" at the first difference', facts: { peer: WEB_OTHER, port: 8080, method: 'GET', path: '/a/x/c' }, route: 'pattern', decision: 'allow' },
  { name: 'pattern with a wildcard first segment', facts: { peer: OPS_ADMIN, port: 8080, method: 'GET', path: '/z/x/c' }, route: 'pattern-wild-first', decision: 'allow' },
  { name: '"*" never matches an empty segment', facts: { peer: WEB_OTHER, port: 8080, method: 'GET', path: '/a/b/c/' }, route: 'prefix-a-b', decision: 'deny' },
  { name: 'longest prefix wins', facts: { peer: OPS_ADMIN, port: 8080, method: 'GET', path: '/a/b/d/e' }, route: 'prefix-a-b', decision: 'allow' },
  { name: 'method-specific prefix beats any-method prefix of the same value', facts: { peer: WEB_OTHER, port: 8080, method: 'POST', path: '/a/b/d' }, route: 'prefix-a-b-post', decision: 'allow' },
  { name: 'a prefix written /a/b/ matches /a/b/ (its trailing slash is ignored)', facts: { peer: OPS_ADMIN, port: 8080, method: 'GET', path: '/a/b/' }, route: 'prefix-a-b', decision: 'allow' },
  { name: 'a prefix written /a/b/ matches the bare segment /a/b when nothing more specific does', facts: { peer: OPS_ADMIN, port: 8080, method: 'PATCH', path: '/a/b' }, route: 'exact-any', decision: 'allow' },
  { name: 'prefixes are segment-wise: /a does not match /ab', facts: { peer: WEB_OTHER, port: 8080, method: 'GET', path: '/ab' }, route: 'root-unscoped', decision: 'deny' },
  { name: 'shorter prefix when the longer one does not match', facts: { peer: WEB_OTHER, port: 8080, method: 'GET', path: '/a/z' }, route: 'prefix-a', decision: 'allow' },
  { name: 'port-scoped route beats an unscoped one at the same prefix (method-specific first)', facts: { peer: FRONTEND, port: 8080, method: 'DELETE', path: '/q' }, route: 'root-scoped', decision: 'allow' },
  { name: 'unscoped root prefix applies on every declared http/grpc port', facts: { peer: FOREIGN, port: 9090, method: 'POST', path: '/other.Svc/Call' }, route: 'root-unscoped', decision: 'allow' },
  { name: 'gRPC method beats gRPC service', facts: { peer: FRONTEND, port: 9090, grpc: { service: 'shop.v1.Orders', method: 'Get' } }, route: 'grpc-method', decision: 'allow' },
  { name: 'gRPC service route covers the other methods', facts: { peer: FRONTEND, port: 9090, method: 'POST', path: '/shop.v1.Orders/Delete' }, route: 'grpc-service', decision: 'deny' },
  { name: 'gRPC service prefix is segment-wise', facts: { peer: FOREIGN, port: 9090, method: 'POST', path: '/shop.v1.OrdersX/Get' }, route: 'root-unscoped', decision: 'allow' },
  { name: 'opaque tcp port: the port-wide route decides, method and path ignored', facts: { peer: OPS_ADMIN, port: 5432 }, route: 'db', decision: 'allow' },
  { name: 'opaque tcp port denies other callers', facts: { peer: FRONTEND, port: 5432, method: 'GET', path: '/a/b' }, route: 'db', decision: 'deny' },
  { name: 'unauthenticated caller never matches an identity', facts: { peer: null, port: 8080, method: 'GET', path: '/a/b' }, route: 'exact-get', decision: 'deny' },
  { name: 'undeclared port -> server default (deny)', facts: { peer: FRONTEND, port: 1234, method: 'GET', path: '/a/b' }, route: null, decision: 'deny' },
];

describe('route precedence (table)', () => {
  const compiled = compile(precedence);
  for (const c of cases) {
    it(c.name, () => {
      const d = decide(compiled, c.facts);
      expect({ route: d.route, decision: d.decision }).toEqual({ route: c.route, decision: c.decision });
    });
  }
});

describe('callers', () => {
  const p = policyOf(`
        - { name: exact, path: { exact: /exact }, callers: [{ spiffeId: "${FRONTEND}" }] }
        - { name: ns, path: { exact: /ns }, callers: [{ namespace: web }] }
        - { name: ns-foreign, path: { exact: /ns-foreign }, callers: [{ namespace: web, trustDomain: partner.example }] }
        - { name: td, path: { exact: /td }, callers: [{ trustDomain: partner.example }] }
        - { name: any, path: { exact: /any }, callers: [{ anyAuthenticated: true }] }
        - { name: plain, path: { exact: /plain }, callers: [{ unauthenticated: true }] }
        - { name: nobody, path: { exact: /nobody }, callers: [] }
`);
  const compiled = compile(p);
  const table: [string, string | null, boolean][] = [
    ['/exact', FRONTEND, true],
    ['/exact', WEB_OTHER, false],
    ['/exact', `${FRONTEND}x`, false],
    ['/ns', WEB_OTHER, true],
    ['/ns', 'spiffe://cluster.local/ns/web/sa/a/b', false],
    ['/ns', 'spiffe://cluster.local/ns/webx/sa/a', false],
    ['/ns', 'spiffe://cluster.local/ns/web/sa/', false],
    ['/ns', FOREIGN, false],
    ['/ns-foreign', FOREIGN, true],
    ['/ns-foreign', FRONTEND, false],
    ['/td', FOREIGN, true],
    ['/td', 'spiffe://partner.example', true],
    ['/td', 'spiffe://partner.examplex/ns/a/sa/b', false],
    ['/td', FRONTEND, false],
    ['/any', FOREIGN, true],
    ['/any', null, false],
    ['/plain', null, true],
    ['/plain', FRONTEND, false],
    ['/nobody', FRONTEND, false],
    ['/nobody', null, false],
  ];
  for (const [path, peer, allowed] of table) {
    it(`${path} ${peer ?? 'unauthenticated'} -> ${allowed ? 'allow' : 'deny'}`, () => {
      expect(decide(compiled, { peer, port: 8080, method: 'GET', path }).decision).toBe(allowed ? 'allow' : 'deny');
    });
  }
});

describe('defaults: no route matches vs no policy exists', () => {
  const routes = `        - { name: only, path: { exact: /only }, callers: [{ spiffeId: "${FRONTEND}" }] }\n`;
  const unmatched = (peer: string | null): RequestFacts => ({ peer, port: 8080, method: 'GET', path: '/elsewhere' });

  it('server default deny', () => {
    const d = decide(compile(policyOf(routes, '      default: deny\n'), 'audit'), unmatched(FRONTEND));
    expect(d).toMatchObject({ decision: 'deny', route: null, code: 'no-route-matched', mode: 'enforce', wouldDeny: false });
  });
  it('server default all-authenticated allows a verified peer and denies a plaintext one', () => {
    const c = compile(policyOf(routes, '      default: all-authenticated\n'));
    expect(decide(c, unmatched(FOREIGN))).toMatchObject({ decision: 'allow', route: null, code: 'no-route-matched' });
    expect(decide(c, unmatched(null))).toMatchObject({ decision: 'deny', route: null, code: 'no-route-matched' });
  });
  it('server default audit allows and records would-deny', () => {
    const d = decide(compile(policyOf(routes, '      default: audit\n')), unmatched(null));
    expect(d).toMatchObject({ decision: 'allow', route: null, mode: 'audit', wouldDeny: true });
  });
  it('no server default -> the mesh default', () => {
    expect(decide(compile(policyOf(routes), 'all-authenticated'), unmatched(FRONTEND)).decision).toBe('allow');
    expect(decide(compile(policyOf(routes), 'deny'), unmatched(FRONTEND)).decision).toBe('deny');
  });
  it('no policy at all -> the mesh default, with code no-policy', () => {
    for (const [meshDefault, decision] of [['deny', 'deny'], ['all-authenticated', 'allow'], ['audit', 'allow']] as const) {
      const d = decide(compile(null, meshDefault), { peer: FRONTEND, port: 8080, method: 'GET', path: '/x' });
      expect(d).toMatchObject({ decision, route: null, code: 'no-policy' });
    }
  });
  it('a policy whose servers do not select this workload counts as no policy', () => {
    const c = compilePolicy(policyOf(routes), { self: { namespace: 'shop', serviceAccount: 'someone-else' }, meshDefault: 'deny' });
    expect(c.server).toBeNull();
    expect(decide(c, { peer: FRONTEND, port: 8080, method: 'GET', path: '/only' })).toMatchObject({ decision: 'deny', code: 'no-policy' });
  });
  it('server mode audit turns a route denial into an allow that records would-deny', () => {
    const c = compile(policyOf(routes, '      mode: audit\n'));
    expect(decide(c, { peer: WEB_OTHER, port: 8080, method: 'GET', path: '/only' })).toMatchObject({
      decision: 'allow', route: 'only', code: 'caller-not-allowed', mode: 'audit', wouldDeny: true,
    });
    expect(decide(c, { peer: FRONTEND, port: 8080, method: 'GET', path: '/only' })).toMatchObject({ decision: 'allow', mode: 'enforce', wouldDeny: false });
  });
});

describe('server selection', () => {
  const text = `apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
spec:
  servers:
    - name: by-labels
      selector: { matchLabels: { app: orders, tier: api } }
      default: all-authenticated
      ports: [{ port: 8080, protocol: http }]
      routes: []
    - name: by-sa
      selector: { serviceAccount: orders }
      ports: [{ port: 8080, protocol: http }]
      routes: []
`;
  const r = parsePolicy(text);
  if (!r.ok) throw new Error('fixture invalid');
  it('all labels of matchLabels must match; the first matching server wins', () => {
    expect(compilePolicy(r.policy, { self: { namespace: 'a', serviceAccount: 'orders', labels: { app: 'orders', tier: 'api', x: 'y' } }, meshDefault: 'deny' }).server).toBe('by-labels');
    expect(compilePolicy(r.policy, { self: { namespace: 'a', serviceAccount: 'orders', labels: { app: 'orders' } }, meshDefault: 'deny' }).server).toBe('by-sa');
    expect(compilePolicy(r.policy, { self: { namespace: 'a', serviceAccount: 'x' }, meshDefault: 'deny' }).server).toBeNull();
  });
});

describe('decisions are preallocated', () => {
  it('returns the same frozen object for the same outcome', () => {
    const c = compile(precedence);
    const facts: RequestFacts = { peer: FRONTEND, port: 8080, method: 'GET', path: '/a/b' };
    const a = decide(c, facts);
    expect(decide(c, { ...facts })).toBe(a);
    expect(Object.isFrozen(a)).toBe(true);
  });
});

describe('compile shares work without changing decisions', () => {
  const text = `apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
spec:
  servers:
    - name: api
      selector: { serviceAccount: api }
      ports: [{ port: 8080, protocol: http }, { port: 8081, protocol: http }, { port: 8082, protocol: http }]
      routes:
        - { name: web-a, path: { exact: /a }, callers: &web [{ namespace: web }] }
        - { name: web-b, path: { prefix: /b }, callers: *web }
        - { name: only-8082, port: 8082, path: { exact: /a }, callers: [] }
`;
  const r = parsePolicy(text);
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  const c = compilePolicy(r.policy, { self, meshDefault: 'deny' });
  it('ports with no routes of their own decide alike; a port-scoped route stays on its port', () => {
    for (const port of [8080, 8081]) expect(decide(c, { peer: FRONTEND, port, method: 'GET', path: '/a' })).toMatchObject({ route: 'web-a', decision: 'allow' });
    expect(decide(c, { peer: FRONTEND, port: 8082, method: 'GET', path: '/a' })).toMatchObject({ route: 'only-8082', decision: 'deny' });
    expect(decide(c, { peer: FRONTEND, port: 8082, method: 'GET', path: '/b/1' })).toMatchObject({ route: 'web-b', decision: 'allow' });
  });
  it('a caller list shared through a YAML alias is compiled once and matches for every route using it', () => {
    const [a, b] = c.routes;
    expect(a!.callers).toBe(b!.callers);
    expect(decide(c, { peer: OPS_ADMIN, port: 8081, method: 'GET', path: '/b' })).toMatchObject({ route: 'web-b', decision: 'deny' });
  });
});
