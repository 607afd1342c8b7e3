import { describe, expect, it } from 'vitest';
import { compilePolicy } from '../../../src/data-plane/policy/compile.ts';
import { decide } from '../../../src/data-plane/policy/decide.ts';
import { parsePolicy } from '../../../src/data-plane/policy/parse.ts';
import type { Policy } from '../../../src/data-plane/policy/types.ts';
import { closedInsideOpenPolicy, expressDefaultHandler } from './express-router.ts';

// Issue 11: "close /admin inside an open prefix" against an app router with Express defaults.
const WEB = 'spiffe://cluster.local/ns/web/sa/frontend';
const OPS = 'spiffe://cluster.local/ns/ops/sa/admin';
const self = { namespace: 'shop', serviceAccount: 'api' };

function parsed(text: string): { policy: Policy; warnings: string[] } {
  const r = parsePolicy(text, 'policy.yaml');
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return { policy: r.policy, warnings: r.warnings.map((w) => `${w.code} ${w.path}`) };
}

// [method, path, caller]: every spelling issue 11 found reaching a closed handler, and neighbours.
const requests: [string, string, string][] = [
  ['GET', '/admin', WEB],
  ['GET', '/ADMIN', WEB],
  ['GET', '/Admin/users', WEB],
  ['POST', '/aDmIn/users/', WEB],
  ['GET', '/internal', WEB],
  ['GET', '/internal/', WEB],
  ['DELETE', '/INTERNAL/', WEB],
  ['GET', '/report', WEB],
  ['HEAD', '/report', WEB],
  ['HEAD', '/REPORT/', WEB],
  ['GET', '/report', OPS],
  ['HEAD', '/report', OPS],
  ['POST', '/report', WEB],
  ['GET', '/adminx', WEB],
  ['GET', '/public/page', WEB],
];

describe('issue 11: policy vs an Express-default router', () => {
  describe('pathMatching: case-insensitive-trailing-slash — the route that decides is the handler Express runs', () => {
    const { policy, warnings } = parsed(closedInsideOpenPolicy('case-insensitive-trailing-slash'));
    const compiled = compilePolicy(policy, { self, meshDefault: 'deny' });
    it('policy check has nothing to warn about', () => expect(warnings).toEqual([]));
    it.each(requests)('%s %s from %s', (method, path, peer) => {
      const handler = expressDefaultHandler(method, path);
      const d = decide(compiled, { peer, port: 8080, method, path });
      expect(d.route).toBe(handler);
      const allowed = handler === 'public' || (handler === 'report' && peer === OPS);
      expect(d.decision).toBe(allowed ? 'allow' : 'deny');
    });
  });

  describe('pathMatching: exact (the default) — check warns, and only HEAD is closed by the matcher', () => {
    const { policy, warnings } = parsed(closedInsideOpenPolicy());
    const compiled = compilePolicy(policy, { self, meshDefault: 'deny' });
    it('policy check warns POLICY_DENY_INSIDE_ALLOW at each closed route', () => {
      expect(warnings).toEqual(['POLICY_DENY_INSIDE_ALLOW spec.servers[0].routes[1]', 'POLICY_DENY_INSIDE_ALLOW spec.servers[0].routes[2]', 'POLICY_DENY_INSIDE_ALLOW spec.servers[0].routes[3]']);
    });
    // What the warning is about: these spellings reach the closed handler through "public".
    it.each([
      ['GET', '/ADMIN'],
      ['GET', '/Admin/users'],
      ['GET', '/internal/'],
    ])('%s %s is decided by the enclosing route (the case the warning names)', (method, path) => {
      expect(decide(compiled, { peer: WEB, port: 8080, method, path })).toMatchObject({ route: 'public', decision: 'allow' });
    });
    it('HEAD /report is decided by the GET-only route in every mode', () => {
      expect(decide(compiled, { peer: WEB, port: 8080, method: 'HEAD', path: '/report' })).toMatchObject({ route: 'report', decision: 'deny' });
      expect(decide(compiled, { peer: OPS, port: 8080, method: 'HEAD', path: '/report' })).toMatchObject({ route: 'report', decision: 'allow' });
    });
    it('in exact mode the closed route decides only its own spelling', () => {
      expect(decide(compiled, { peer: WEB, port: 8080, method: 'GET', path: '/Admin' })).toMatchObject({ route: 'public' });
      expect(decide(compiled, { peer: WEB, port: 8080, method: 'GET', path: '/admin/users' })).toMatchObject({ route: 'admin', decision: 'deny' });
    });
  });

  describe('HEAD is authorized as GET', () => {
    const routes = (r: string) =>
      parsePolicy(`apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
spec:
  servers:
    - name: api
      selector: { serviceAccount: api }
      ports: [{ port: 8080, protocol: http }]
      routes:
${r}`);
    it('a GET-only allow lets HEAD in for the same callers, and only them', () => {
      const r = routes(`        - { name: read, methods: [GET], path: { prefix: /orders }, callers: [{ namespace: web }] }\n`);
      if (!r.ok) throw new Error('invalid');
      const c = compilePolicy(r.policy, { self, meshDefault: 'deny' });
      expect(decide(c, { peer: WEB, port: 8080, method: 'HEAD', path: '/orders/1' })).toMatchObject({ route: 'read', decision: 'allow' });
      expect(decide(c, { peer: OPS, port: 8080, method: 'HEAD', path: '/orders/1' })).toMatchObject({ route: 'read', decision: 'deny' });
    });
    it('a route listing only HEAD does not match GET', () => {
      const r = routes(`        - { name: probe, methods: [HEAD], path: { exact: /x }, callers: [{ anyAuthenticated: true }] }\n`);
      if (!r.ok) throw new Error('invalid');
      const c = compilePolicy(r.policy, { self, meshDefault: 'deny' });
      expect(decide(c, { peer: WEB, port: 8080, method: 'GET', path: '/x' })).toMatchObject({ route: null, decision: 'deny' });
    });
    it('a GET route and a HEAD route on one path are ambiguous', () => {
      const r = routes(`        - { name: a, methods: [GET], path: { exact: /x }, callers: [] }\n        - { name: b, methods: [HEAD], path: { exact: /x }, callers: [{ anyAuthenticated: true }] }\n`);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.errors[0]).toMatchObject({ code: 'POLICY_AMBIGUOUS_ROUTE', message: expect.stringContaining('a HEAD request is decided by the routes listing GET') });
    });
  });

  describe('pathMatching: case-insensitive-trailing-slash', () => {
    const text = (routes: string) => `apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
spec:
  servers:
    - name: api
      selector: { serviceAccount: api }
      pathMatching: case-insensitive-trailing-slash
      ports: [{ port: 8080, protocol: http }]
      routes:
${routes}`;
    it('folds route values too: a mixed-case policy path matches every spelling', () => {
      const r = parsePolicy(text(`        - { name: orders, path: { pattern: /Orders/*/Items/ }, callers: [{ namespace: web }] }\n`));
      if (!r.ok) throw new Error(JSON.stringify(r.errors));
      const c = compilePolicy(r.policy, { self, meshDefault: 'deny' });
      for (const path of ['/orders/1/items', '/ORDERS/1/ITEMS/', '/Orders/AbC/Items']) expect(decide(c, { peer: WEB, port: 8080, method: 'GET', path }).route).toBe('orders');
      expect(decide(c, { peer: WEB, port: 8080, method: 'GET', path: '/orders/1/items/x' }).route).toBe(null);
    });
    it('paths that differ only by case or a trailing slash are ambiguous', () => {
      const r = parsePolicy(text(`        - { name: a, path: { exact: /Admin }, callers: [] }\n        - { name: b, path: { exact: /admin/ }, callers: [{ anyAuthenticated: true }] }\n`));
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.errors[0]).toMatchObject({ code: 'POLICY_AMBIGUOUS_ROUTE', message: expect.stringContaining('compares them as equal') });
    });
    it('an unknown mode is a schema error', () => {
      const r = parsePolicy(text(`        - { name: a, path: { exact: /a }, callers: [] }\n`).replace('case-insensitive-trailing-slash', 'loose'));
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.errors[0]).toMatchObject({ code: 'POLICY_SCHEMA', path: 'spec.servers[0].pathMatching', message: 'must be one of: exact, case-insensitive-trailing-slash' });
    });
  });
});

describe('policy check: POLICY_DENY_INSIDE_ALLOW (which shapes, which spellings)', () => {
  const warningsOf = (routes: string, extra = '') => {
    const r = parsePolicy(`apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
spec:
  servers:
    - name: api
      selector: { serviceAccount: api }
${extra}      ports: [{ port: 8080, protocol: http }, { port: 8081, protocol: http }, { port: 9090, protocol: grpc }]
      routes:
${routes}`);
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    return r.warnings.filter((w) => w.code === 'POLICY_DENY_INSIDE_ALLOW').map((w) => `${w.path} ${w.message}`);
  };
  const ops = `[{ namespace: ops }]`;
  it.each<[string, string, string, (RegExp | string)[]]>([
    ['a prefix pins the case of its own segments: only the trailing-slash spelling escapes', `        - { name: orders, path: { prefix: /orders }, callers: [{ namespace: web }] }\n        - { name: list, path: { exact: /orders }, callers: ${ops} }\n`, '', [/routes\[1\] .*for \/orders\/, and route "orders" decides/]],
    ['the part under the prefix may change case', `        - { name: api, path: { prefix: /api }, callers: [{ anyAuthenticated: true }] }\n        - { name: admin, path: { exact: /api/admin }, callers: [] }\n`, '', [/runs the same handler for \/api\/ADMIN,.* for \/api\/admin\//]],
    ['a pattern encloses an exact path; its literal segments keep their case', `        - { name: users, path: { pattern: /users/*/profile }, callers: [{ anyAuthenticated: true }] }\n        - { name: root, path: { exact: /users/root/profile }, callers: [] }\n`, '', [/for \/users\/ROOT\/profile, and route "users" decides/]],
    ['a port-wide route encloses every path route on its ports', `        - { name: all, callers: [{ anyAuthenticated: true }] }\n        - { name: admin, path: { prefix: /admin }, callers: [] }\n`, '', [/route "all" \(every request on the port \(any method\)\)/]],
    ['default all-authenticated encloses every route', `        - { name: admin, path: { prefix: /admin }, callers: ${ops} }\n`, '      default: all-authenticated\n', [/than the server default all-authenticated/]],
    ['callers the narrower route covers: no warning (a namespace covers its IDs)', `        - { name: api, path: { prefix: /api }, callers: [{ spiffeId: "spiffe://cluster.local/ns/ops/sa/x" }] }\n        - { name: admin, path: { exact: /api/admin }, callers: ${ops} }\n`, '', []],
    ['different ports: no warning', `        - { name: api, port: 8080, path: { prefix: / }, callers: [{ anyAuthenticated: true }] }\n        - { name: admin, port: 8081, path: { prefix: /admin }, callers: [] }\n`, '', []],
    ['methods that never meet: no warning (POST-only open, GET-only closed)', `        - { name: api, methods: [POST], path: { prefix: / }, callers: [{ anyAuthenticated: true }] }\n        - { name: admin, methods: [GET], path: { prefix: /admin }, callers: [] }\n`, '', []],
    ['gRPC routes: no warning (gRPC routes method paths exactly)', `        - { name: svc, port: 9090, grpc: { service: shop.v1.Orders }, callers: [{ anyAuthenticated: true }] }\n        - { name: get, port: 9090, grpc: { service: shop.v1.Orders, method: Get }, callers: [] }\n`, '', []],
    ['no letters and a prefix: nothing to respell, no warning', `        - { name: api, path: { prefix: / }, callers: [{ anyAuthenticated: true }] }\n        - { name: v1, path: { prefix: /1/2 }, callers: [] }\n`, '', []],
    ['pathMatching case-insensitive-trailing-slash: no warning', `        - { name: api, path: { prefix: / }, callers: [{ anyAuthenticated: true }] }\n        - { name: admin, path: { exact: /admin }, callers: [] }\n`, '      pathMatching: case-insensitive-trailing-slash\n', []],
  ])('%s', (_name, routes, extra, expected) => {
    const got = warningsOf(routes, extra);
    expect(got).toHaveLength(expected.length);
    expected.forEach((e, i) => expect(got[i]).toMatch(e));
  });
});
