import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli as run } from '../injector/cli-support.ts';
import { closedInsideOpenPolicy } from './express-router.ts';
import { aliasBombPolicy, overRouteCapPolicy } from './hostile-policies.ts';

const FIXTURES = join(import.meta.dirname, '../../fixtures/policy');
const fixture = (name: string) => join(FIXTURES, name);
const FRONTEND = 'spiffe://cluster.local/ns/web/sa/frontend';

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

  it('an alias bomb is one coded error line and exit 1, never a stack trace', async () => {
    const r = await run(['policy', 'check', '-'], aliasBombPolicy());
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('<stdin>:4:10: error POLICY_ALIAS_LIMIT: YAML aliases expand past the limit of 100 (an alias bomb, or one anchor reused too often; docs/policy.md#limits)\n');
    expect(r.stdout).toBe('<stdin>: INVALID, 1 error\n');
  });

  it('a policy over a cap: the cap named, exit 1', async () => {
    const r = await run(['policy', 'check', '-'], overRouteCapPolicy());
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('error POLICY_LIMIT at spec.servers[0].routes: spec.servers[0].routes has 1001 routes; the limit is 1000 routes per server');
  });

  it('a file over 8 MiB is refused with its code, not read whole', async () => {
    const r = await run(['policy', 'check', '-'], '#'.repeat(8 * 1024 * 1024 + 1));
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('<stdin>: error POLICY_FILE_TOO_LARGE: <stdin> is larger than 8388608 bytes (8 MiB), the most policy check reads\n');
  });

  it('deny inside allow: warned with its location and what to do, exit 0', async () => {
    const r = await run(['policy', 'check', '-'], closedInsideOpenPolicy());
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('<stdin>: valid (3 warnings)\n');
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^<stdin>:12:11: warning POLICY_DENY_INSIDE_ALLOW at spec\.servers\[0\]\.routes\[1\]: route "admin" \(path prefix \/admin any method\) allows fewer callers than route "public"/);
    expect(lines[0]).toContain('Express by default, ASP.NET Core) runs the same handler for /ADMIN/…');
    expect(lines[1]).toContain('for /internal/');
    expect(lines[2]).toContain('route "report" (exact path /report GET)');
    for (const l of lines) expect(l).toContain('set "pathMatching: case-insensitive-trailing-slash" on server "api"');
    const tolerant = await run(['policy', 'check', '-'], closedInsideOpenPolicy('case-insensitive-trailing-slash'));
    expect([tolerant.code, tolerant.stderr]).toEqual([0, '']);
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

  it('an http or grpc port without a request is a usage error, not an opaque-connection answer (exit 2)', async () => {
    const http = await explain('--from', FRONTEND, '--port', '8080');
    expect(http.code).toBe(2);
    expect(http.stdout).toBe('');
    expect(http.stderr).toContain('port 8080 is an http port: pass --method and --path');
    const grpc = await explain('--from', FRONTEND, '--port', '9090', '--output', 'json');
    expect(grpc.code).toBe(2);
    expect(grpc.stderr).toContain('port 9090 is a grpc port: pass --method and --path or --grpc SERVICE/METHOD');
    // A port the policy does not declare still gets its answer (the default decides).
    expect((await explain('--from', FRONTEND, '--port', '7777', '--output', 'json')).code).toBe(0);
  });

  it('an invalid policy file exits 1 with its errors', async () => {
    const r = await run(['policy', 'explain', fixture('duplicate-route-name.yaml'), '--from', FRONTEND, '--port', '8080']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('POLICY_DUPLICATE_ROUTE');
    expect(r.stderr).toContain('POLICY_INVALID');
  });

  it('pathMatching case-insensitive-trailing-slash: /ORDERS/ is decided as /orders, and says so', async () => {
    const r = await explain('--from', FRONTEND, '--port', '8080', '--method', 'GET', '--path', '/ORDERS/', '--output', 'json');
    expect(JSON.parse(r.stdout)).toMatchObject({ decision: 'allow', route: 'list-orders', path: '/ORDERS/', pathMatching: 'case-insensitive-trailing-slash', matchedAs: '/orders' });
    const text = await explain('--from', FRONTEND, '--port', '8080', '--method', 'GET', '--path', '/ORDERS/');
    expect(text.stdout).toContain('paths:  case-insensitive-trailing-slash: compared as /orders');
  });

  it('HEAD is explained as the GET route that decides it', async () => {
    const r = await explain('--from', 'spiffe://cluster.local/ns/ops/sa/x', '--port', '8080', '--method', 'HEAD', '--path', '/orders/1/items', '--output', 'json');
    expect(JSON.parse(r.stdout)).toMatchObject({ decision: 'deny', route: 'order-items', match: 'pattern path /orders/*/items GET' });
  });

  it('--help prints the usage', async () => {
    const r = await run(['policy', 'explain', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: meshlet policy explain FILE');
  });
});
