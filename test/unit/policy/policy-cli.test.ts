import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.ts';

const FIXTURES = join(import.meta.dirname, '../../fixtures/policy');
const fixture = (name: string) => join(FIXTURES, name);
const FRONTEND = 'spiffe://cluster.local/ns/web/sa/frontend';

async function run(argv: string[], stdin = '') {
  const out = new PassThrough();
  const err = new PassThrough();
  const input = new PassThrough();
  let stdout = '';
  let stderr = '';
  out.on('data', (d) => (stdout += d));
  err.on('data', (d) => (stderr += d));
  input.end(stdin);
  const code = await main(argv, { stdout: out, stderr: err, stdin: input });
  return { code, stdout, stderr };
}

describe('meshlet policy check', () => {
  it('exits 0 for a valid policy', async () => {
    const r = await run(['policy', 'check', fixture('valid-orders.yaml')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('valid-orders.yaml: valid');
  });

  it('exits 1 and prints every error with file:line:col, YAML path and code', async () => {
    const r = await run(['policy', 'check', fixture('valid-orders.yaml'), fixture('path-not-normalized.yaml')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${fixture('path-not-normalized.yaml')}:10:26: error POLICY_PATH_NOT_NORMALIZED at spec.servers[0].routes[0].path.exact`);
    expect(r.stderr).toContain(`${fixture('path-not-normalized.yaml')}:13:27: error POLICY_PATH_NOT_NORMALIZED at spec.servers[0].routes[1].path.prefix`);
    expect(r.stdout).toContain('INVALID, 2 errors');
  });

  it('accepts a ConfigMap manifest and locates the error in the file', async () => {
    const r = await run(['policy', 'check', fixture('configmap-with-invalid-policy.yaml')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${fixture('configmap-with-invalid-policy.yaml')}:21:29: error POLICY_BAD_SPIFFE_ID`);
  });

  it('reads stdin for "-" and has a JSON output', async () => {
    const r = await run(['policy', 'check', '-', '--output', 'json'], 'apiVersion: nope\n');
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout);
    expect(report.valid).toBe(false);
    expect(report.policies[0].errors.map((e: { code: string }) => e.code)).toContain('POLICY_SCHEMA');
  });

  it('warnings do not fail the check', async () => {
    const r = await run(['policy', 'check', fixture('shadowed-port-wide-route.yaml')]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('warning POLICY_SHADOWED_ROUTE');
  });

  it('a missing file is an error with its code, exit 1', async () => {
    const r = await run(['policy', 'check', fixture('does-not-exist.yaml')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('POLICY_FILE_UNREADABLE');
  });

  it('no file is a usage error, exit 2', async () => {
    expect((await run(['policy', 'check'])).code).toBe(2);
  });
});

describe('meshlet policy explain', () => {
  const explain = (...args: string[]) => run(['policy', 'explain', fixture('valid-orders.yaml'), ...args]);

  it('--output json: decision, route and reason of an allowed request', async () => {
    const r = await explain('--from', FRONTEND, '--port', '8080', '--method', 'GET', '--path', '/orders', '--output', 'json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ decision: 'allow', route: 'list-orders', reason: 'caller is authorized by route "list-orders"', server: 'orders', protocol: 'http', path: '/orders' });
  });

  it('normalizes the path the way the sidecar does before matching', async () => {
    const r = await explain('--from', FRONTEND, '--port', '8080', '--method', 'GET', '--path', '//orders/%31/./items?x=1', '--output', 'json');
    expect(JSON.parse(r.stdout)).toMatchObject({ decision: 'allow', route: 'order-items', path: '/orders/1/items' });
  });

  it('a refused path is a deny with the 400 the sidecar would answer', async () => {
    const r = await explain('--from', FRONTEND, '--port', '8080', '--method', 'GET', '--path', '/orders%2F1', '--output', 'json');
    expect(JSON.parse(r.stdout)).toMatchObject({ decision: 'deny', route: null, code: 'PATH_ENCODED_SLASH', status: 400 });
  });

  it('--grpc and --from unauthenticated', async () => {
    const r = await explain('--from', 'unauthenticated', '--port', '9090', '--grpc', 'shop.v1.Orders/GetOrder', '--output', 'json');
    expect(JSON.parse(r.stdout)).toMatchObject({ decision: 'deny', route: 'grpc-get-order', code: 'caller-not-allowed' });
  });

  it('no route matching -> route null and the default named in the reason', async () => {
    const r = await explain('--from', FRONTEND, '--port', '8080', '--method', 'GET', '--path', '/nowhere', '--output', 'json');
    const out = JSON.parse(r.stdout);
    expect(out).toMatchObject({ decision: 'deny', route: null, code: 'no-route-matched' });
    expect(out.reason).toContain('default policy is deny');
  });

  it('text output names the route and why', async () => {
    const r = await explain('--from', FRONTEND, '--port', '8080', '--method', 'POST', '--path', '/admin/x');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^DENY {2}route "admin" \(path prefix \/admin any method\)/);
    expect(r.stdout).toContain('reason: caller is not authorized by route "admin" [caller-not-allowed]');
  });

  it('--server-account selecting no server -> the mesh default applies', async () => {
    const r = await explain('--from', FRONTEND, '--port', '8080', '--method', 'GET', '--path', '/orders', '--server-account', 'other', '--mesh-default', 'all-authenticated', '--output', 'json');
    expect(JSON.parse(r.stdout)).toMatchObject({ decision: 'allow', route: null, code: 'no-policy', server: null });
  });

  it('bad flags are usage errors (exit 2) naming the problem', async () => {
    const bad = await explain('--from', 'spiffe://Bad/x', '--port', '8080');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--from: invalid SPIFFE ID');
    expect((await explain('--from', FRONTEND, '--port', '70000')).stderr).toContain('--port must be an integer');
    expect((await explain('--from', FRONTEND, '--port', '80', '--grpc', 'a/b', '--path', '/x', '--method', 'GET')).code).toBe(2);
    expect((await explain('--port', '80')).stderr).toContain('missing required flag --from');
  });

  it('an invalid policy file exits 1 with its errors', async () => {
    const r = await run(['policy', 'explain', fixture('duplicate-route-name.yaml'), '--from', FRONTEND, '--port', '8080']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('POLICY_DUPLICATE_ROUTE');
    expect(r.stderr).toContain('POLICY_INVALID');
  });

  it('--help prints the usage', async () => {
    const r = await run(['policy', 'explain', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: meshlet policy explain FILE');
  });
});
