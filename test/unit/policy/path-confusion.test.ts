import { describe, expect, it } from 'vitest';
import { compilePolicy } from '../../../src/data-plane/policy/compile.ts';
import { decide } from '../../../src/data-plane/policy/decide.ts';
import { normalizePath, type PathRefusalCode } from '../../../src/data-plane/policy/normalize-path.ts';
import { parsePolicy } from '../../../src/data-plane/policy/parse.ts';

/**
 * Path-confusion attempts against a policy where /admin is for the ops admin only and
 * everything else is open to the web namespace. Each attempt is either refused (400, with
 * the documented code) or normalized to exactly the documented path — and then matched by
 * the route that path deserves, never by the open one.
 */
function compileAdminPolicy(pathMatching?: string) {
  const r = parsePolicy(`apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
spec:
  servers:
    - name: api
      selector: { serviceAccount: api }
${pathMatching ? `      pathMatching: ${pathMatching}\n` : ''}      ports: [{ port: 8080, protocol: http }]
      routes:
        - name: admin
          path: { prefix: /admin }
          callers: [{ spiffeId: spiffe://cluster.local/ns/ops/sa/admin }]
        - name: public
          path: { prefix: / }
          callers: [{ namespace: web }]
`);
  if (!r.ok) throw new Error('fixture invalid');
  return compilePolicy(r.policy, { self: { namespace: 'shop', serviceAccount: 'api' }, meshDefault: 'deny' });
}
const policy = compileAdminPolicy();
const ATTACKER = 'spiffe://cluster.local/ns/web/sa/frontend';

type Expect = { path: string; route?: string; query?: string } | { refused: PathRefusalCode };

const attempts: [string, string, Expect][] = [
  ['plain', '/admin/users', { path: '/admin/users', route: 'admin' }],
  ['double slash before', '//admin/users', { path: '/admin/users', route: 'admin' }],
  ['many slashes inside', '/admin///users', { path: '/admin/users', route: 'admin' }],
  ['dot segment', '/./admin', { path: '/admin', route: 'admin' }],
  ['dot-dot segment', '/public/../admin', { path: '/admin', route: 'admin' }],
  ['dot-dot above root', '/../../admin', { path: '/admin', route: 'admin' }],
  ['encoded dots (lowercase)', '/public/%2e%2e/admin', { path: '/admin', route: 'admin' }],
  ['encoded dots (uppercase)', '/public/%2E%2E/admin', { path: '/admin', route: 'admin' }],
  ['mixed encoded dot', '/public/.%2e/admin', { path: '/admin', route: 'admin' }],
  ['encoded single dot', '/%2e/admin', { path: '/admin', route: 'admin' }],
  ['encoded letters', '/%61dmin', { path: '/admin', route: 'admin' }],
  ['encoded letters (lowercase hex)', '/ad%6din/x', { path: '/admin/x', route: 'admin' }],
  ['encoded slash', '/admin%2Fusers', { refused: 'PATH_ENCODED_SLASH' }],
  ['encoded slash (lowercase)', '/public%2f..%2fadmin', { refused: 'PATH_ENCODED_SLASH' }],
  ['double-encoded slash stays literal', '/public%252F..%252Fadmin', { path: '/public%252F..%252Fadmin', route: 'public' }],
  ['encoded backslash', '/public%5C..%5Cadmin', { refused: 'PATH_ENCODED_BACKSLASH' }],
  ['backslash', '/public\\..\\admin', { refused: 'PATH_BACKSLASH' }],
  ['NUL encoded', '/admin%00.html', { refused: 'PATH_NUL' }],
  ['NUL raw', '/public\u0000/admin', { refused: 'PATH_NUL' }],
  ['control character', '/admin\n', { refused: 'PATH_CONTROL_CHARACTER' }],
  ['invalid escape', '/admin%zz', { refused: 'PATH_INVALID_ESCAPE' }],
  ['truncated escape', '/admin%2', { refused: 'PATH_INVALID_ESCAPE' }],
  ['overlong UTF-8 dot', '/public/%C0%AE%C0%AE/admin', { refused: 'PATH_INVALID_UTF8' }],
  ['overlong UTF-8 slash', '/public%C0%AFadmin', { refused: 'PATH_INVALID_UTF8' }],
  ['overlong 3-byte dot', '/public/%E0%80%AE%E0%80%AE/admin', { refused: 'PATH_INVALID_UTF8' }],
  ['UTF-16 surrogate', '/x/%ED%A0%80', { refused: 'PATH_INVALID_UTF8' }],
  ['truncated UTF-8', '/x/%C3', { refused: 'PATH_INVALID_UTF8' }],
  ['valid UTF-8 kept encoded, hex uppercased', '/caf%c3%a9', { path: '/caf%C3%A9', route: 'public' }],
  ['raw non-ASCII', '/adminé', { refused: 'PATH_INVALID_CHARACTER' }],
  ['trailing dot', '/admin.', { refused: 'PATH_TRAILING_DOT' }],
  ['trailing encoded dot', '/admin%2E', { refused: 'PATH_TRAILING_DOT' }],
  ['trailing dots in a middle segment', '/admin../x', { refused: 'PATH_TRAILING_DOT' }],
  ['semicolon path parameter', '/admin;jsessionid=1', { refused: 'PATH_SEMICOLON' }],
  ['semicolon to hide a segment', '/public/..;/admin', { refused: 'PATH_SEMICOLON' }],
  ['case differs: paths are case-sensitive', '/ADMIN', { path: '/ADMIN', route: 'public' }],
  ['query is not matched', '/public?/../admin', { path: '/public', route: 'public', query: '?/../admin' }],
  ['query hiding the admin path keeps it in the query', '/admin?x=/public', { path: '/admin', route: 'admin', query: '?x=/public' }],
  ['fragment is dropped', '/admin#/public', { path: '/admin', route: 'admin', query: '' }],
  ['fragment after the query is dropped', '/public?a=1#frag', { path: '/public', route: 'public', query: '?a=1' }],
  ['encoded question mark stays in the path', '/public%3F/../admin', { path: '/admin', route: 'admin' }],
  ['encoded hash stays in the path', '/admin%23x', { path: '/admin%23x', route: 'public' }],
  ['absolute-form target', 'http://evil/admin', { refused: 'PATH_NOT_ORIGIN_FORM' }],
  ['asterisk-form target', '*', { refused: 'PATH_NOT_ORIGIN_FORM' }],
  ['empty target', '', { refused: 'PATH_EMPTY' }],
  ['too long', '/' + 'a'.repeat(9000), { refused: 'PATH_TOO_LONG' }],
  ['prefix lookalike', '/administrator', { path: '/administrator', route: 'public' }],
  ['tab inside the path', '/admin\tx', { refused: 'PATH_CONTROL_CHARACTER' }],
  ['encoded upper-case letters decode to upper case', '/%41DMIN', { path: '/ADMIN', route: 'public' }],
  ['dot segment at the end keeps the slash', '/admin/.', { path: '/admin/', route: 'admin' }],
  ['encoded dot-dot at the end', '/x/admin/%2e%2e', { path: '/x/', route: 'public' }],
];

/**
 * The same closed prefix under `pathMatching: case-insensitive-trailing-slash` (for routers
 * that ignore case or one trailing slash, Express's defaults): every spelling such a router
 * would hand to its /admin handler lands on the admin route, and the attacker is denied.
 */
const foldingPolicy = compileAdminPolicy('case-insensitive-trailing-slash');
const FOLDED_ADMIN_SPELLINGS = ['/ADMIN', '/Admin/users', '/admin/', '/ADMIN/', '/%41DMIN', '/aDmIn/./x', '//Admin//users', '/public/../ADMIN'];

describe('path confusion', () => {
  for (const [name, raw, expected] of attempts) {
    it(`${name}: ${JSON.stringify(raw.length > 60 ? raw.slice(0, 60) + '…' : raw)}`, () => {
      const n = normalizePath(raw);
      if ('refused' in expected) {
        expect(n.ok).toBe(false);
        if (!n.ok) expect(n.code).toBe(expected.refused);
        return;
      }
      expect(n.ok).toBe(true);
      if (!n.ok) return;
      expect(n.path).toBe(expected.path);
      if (expected.query !== undefined) expect(n.query).toBe(expected.query);
      const d = decide(policy, { peer: ATTACKER, port: 8080, method: 'GET', path: n.path });
      expect(d.route).toBe(expected.route);
      // The attacker is never let into the admin route by any spelling.
      if (d.route === 'admin') expect(d.decision).toBe('deny');
    });
  }

  for (const raw of FOLDED_ADMIN_SPELLINGS) {
    it(`case-insensitive-trailing-slash mode: ${JSON.stringify(raw)} is the admin route, denied to the attacker (GET and HEAD)`, () => {
      const n = normalizePath(raw);
      expect(n.ok).toBe(true);
      if (!n.ok) return;
      for (const method of ['GET', 'HEAD']) {
        const d = decide(foldingPolicy, { peer: ATTACKER, port: 8080, method, path: n.path });
        expect({ method, route: d.route, decision: d.decision }).toEqual({ method, route: 'admin', decision: 'deny' });
      }
    });
  }

  it('normalization is idempotent: a normalized path normalizes to itself (the forwarded path is the authorized one)', () => {
    for (const [, raw] of attempts) {
      const n = normalizePath(raw);
      if (!n.ok) continue;
      const again = normalizePath(n.path);
      expect(again).toMatchObject({ ok: true, path: n.path });
    }
  });

  it('returns the input string itself on the fast path', () => {
    const raw = '/orders/123/items';
    const n = normalizePath(raw);
    expect(n.ok && n.path).toBe(raw);
  });
});
