import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parsePolicy, parsePolicyManifest } from '../../../src/data-plane/policy/parse.ts';
import type { PolicyError } from '../../../src/data-plane/policy/types.ts';

const FIXTURES = join(import.meta.dirname, '../../fixtures/policy');
const read = (name: string) => readFileSync(join(FIXTURES, name), 'utf8');

function errorsOf(name: string): PolicyError[] {
  const r = parsePolicy(read(name), name);
  if (r.ok) throw new Error(`${name} unexpectedly valid`);
  return r.errors;
}

describe('parsePolicy', () => {
  it('accepts the valid fixture with no warnings', () => {
    const r = parsePolicy(read('valid-orders.yaml'), 'valid-orders.yaml');
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.warnings).toEqual([]);
      expect(r.policy.spec.servers[0]!.routes.map((x) => x.name)).toContain('grpc-get-order');
    }
  });

  // Each fixture is named after its defect; the table pins the code, the YAML path and line:col.
  const table: [string, { code: string; path: string; line: number; col: number; message?: RegExp }[]][] = [
    ['duplicate-route-name.yaml', [{ code: 'POLICY_DUPLICATE_ROUTE', path: 'spec.servers[0].routes[1].name', line: 12, col: 17, message: /route name "read" is already used by spec\.servers\[0\]\.routes\[0\]/ }]],
    ['invalid-spiffe-id.yaml', [{ code: 'POLICY_BAD_SPIFFE_ID', path: 'spec.servers[0].routes[0].callers[0].spiffeId', line: 12, col: 25, message: /must be lowercase/ }]],
    [
      'unknown-field-and-bad-enum.yaml',
      [
        { code: 'POLICY_SCHEMA', path: 'spec.servers[0].default', line: 7, col: 16, message: /must be one of: deny, all-authenticated, audit/ },
        { code: 'POLICY_SCHEMA', path: 'spec.servers[0].routes[0].paths', line: 11, col: 11, message: /unknown field "paths"/ },
      ],
    ],
    ['ambiguous-routes.yaml', [{ code: 'POLICY_AMBIGUOUS_ROUTE', path: 'spec.servers[0].routes[1]', line: 13, col: 11 }]],
    [
      'path-not-normalized.yaml',
      [
        { code: 'POLICY_PATH_NOT_NORMALIZED', path: 'spec.servers[0].routes[0].path.exact', line: 10, col: 26, message: /write it as "\/admin"/ },
        { code: 'POLICY_PATH_NOT_NORMALIZED', path: 'spec.servers[0].routes[1].path.prefix', line: 13, col: 27, message: /encoded slash/ },
      ],
    ],
    ['http-match-on-tcp-port.yaml', [{ code: 'POLICY_HTTP_MATCH_ON_TCP', path: 'spec.servers[0].routes[0]', line: 9, col: 11 }]],
    ['undeclared-route-port.yaml', [{ code: 'POLICY_UNDECLARED_PORT', path: 'spec.servers[0].routes[0].port', line: 10, col: 17 }]],
    ['yaml-syntax-error.yaml', [{ code: 'POLICY_YAML', path: '', line: 7, col: 1 }]],
  ];
  for (const [file, expected] of table) {
    it(`reports every error of ${file} with its location`, () => {
      const errors = errorsOf(file).filter((e) => e.severity === 'error');
      expect(errors.map((e) => ({ code: e.code, path: e.path, line: e.line, col: e.col }))).toEqual(expected.map(({ message: _m, ...rest }) => rest));
      expected.forEach((x, i) => {
        if (x.message) expect(errors[i]!.message).toMatch(x.message);
        expect(errors[i]!.source).toBe(file);
      });
    });
  }

  it('reports a shadowed port-wide route as a warning, not an error', () => {
    const r = parsePolicy(read('shadowed-port-wide-route.yaml'));
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.warnings.map((w) => [w.code, w.path])).toEqual([['POLICY_SHADOWED_ROUTE', 'spec.servers[0].routes[1]']]);
  });

  it('collects several schema errors at once', () => {
    const r = parsePolicy('apiVersion: v1\nkind: Nope\nspec: {}\n');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors.map((e) => e.message).sort()).toEqual(['must be "AuthorizationPolicy"', 'must be "policy.meshlet.io/v1alpha1"', 'spec declares neither "servers" nor "clients": a policy needs at least one of the two']);
  });

  it('refuses an empty document and multiple documents', () => {
    expect(parsePolicy('')).toMatchObject({ ok: false, errors: [{ code: 'POLICY_EMPTY' }] });
    expect(parsePolicy('a: 1\n---\nb: 2\n')).toMatchObject({ ok: false, errors: [{ code: 'POLICY_MULTIPLE_DOCUMENTS' }] });
  });

  it('refuses a caller mixing two kinds, and a bad pattern', () => {
    const base = (route: string) => `apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
spec:
  servers:
    - name: api
      selector: { serviceAccount: api }
      ports: [{ port: 80, protocol: http }]
      routes:
        - ${route}
`;
    expect(parsePolicy(base('{ name: a, callers: [{ spiffeId: "spiffe://td/x", anyAuthenticated: true }] }'))).toMatchObject({ ok: false, errors: [{ code: 'POLICY_BAD_CALLER' }] });
    expect(parsePolicy(base('{ name: a, path: { pattern: /a/b* }, callers: [] }'))).toMatchObject({ ok: false, errors: [{ code: 'POLICY_BAD_PATTERN' }] });
    expect(parsePolicy(base('{ name: a, path: { exact: /a, prefix: /b }, callers: [] }'))).toMatchObject({ ok: false, errors: [{ code: 'POLICY_CONFLICTING_MATCH' }] });
    expect(parsePolicy(base('{ name: a, callers: [{ trustDomain: "Bad.TD" }] }'))).toMatchObject({ ok: false, errors: [{ code: 'POLICY_BAD_TRUST_DOMAIN' }] });
    const warned = parsePolicy(base('{ name: a, callers: [{ unauthenticated: true }] }'));
    expect(warned).toMatchObject({ ok: true, warnings: [{ code: 'POLICY_UNAUTHENTICATED_CALLER' }] });
  });
});

describe('parsePolicyManifest (ConfigMaps)', () => {
  it('reports an error inside a ConfigMap at its line in the file', () => {
    const [only, ...rest] = parsePolicyManifest(read('configmap-with-invalid-policy.yaml'), 'cm.yaml');
    expect(rest).toEqual([]);
    expect(only!.label).toBe('cm.yaml: ConfigMap shop/orders-policy data[policy.yaml]');
    expect(only!.result).toMatchObject({ ok: false, errors: [{ code: 'POLICY_BAD_SPIFFE_ID', source: 'cm.yaml', line: 21, col: 29 }] });
  });

  it('refuses a ConfigMap without a policy key', () => {
    const [only] = parsePolicyManifest(read('configmap-without-policy-key.yaml'), 'cm.yaml');
    expect(only!.result).toMatchObject({ ok: false, errors: [{ code: 'POLICY_CONFIGMAP_NO_KEY' }] });
  });

  it('reads a multi-document file: a bare policy and a ConfigMap', () => {
    const text = `${read('valid-orders.yaml')}\n---\n${read('configmap-with-invalid-policy.yaml')}`;
    const found = parsePolicyManifest(text, 'both.yaml');
    expect(found.map((f) => f.result.ok)).toEqual([true, false]);
    const lines = text.split('\n');
    const err = found[1]!.result.ok ? undefined : found[1]!.result.errors[0];
    expect(lines[err!.line! - 1]).toContain('spiffeId: spiffe://cluster.local/ns/web/sa/');
  });
});
