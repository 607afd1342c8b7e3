import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { run } from './run.ts';

/**
 * Issue 16 item 1 — `meshlet policy explain` both ways: "may X call Y?" answered from the
 * caller's client policy and the destination's server policy together (two files, as two
 * namespaces' ConfigMaps would be), each decision with what decided it, allowed only if both
 * allow; the one-direction usage is unchanged (test/unit/policy/policy-cli.test.ts pins it).
 */
const FRONTEND = 'spiffe://cluster.local/ns/web/sa/frontend';
const ORDERS = 'spiffe://cluster.local/ns/shop/sa/orders';
const dir = mkdtempSync(join(tmpdir(), 'meshlet-explain-both-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const WEB = join(dir, 'web.yaml');
writeFileSync(WEB, `apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: web, namespace: web }
spec:
  clients:
    - name: frontend
      selector: { serviceAccount: frontend }
      destinations:
        - { name: orders, spiffeId: ${ORDERS}, ports: [8080] }
        - { name: stripe, host: api.stripe.com, ports: [443] }
        - { name: payments, service: payments, namespace: pay }
`);
const SHOP = join(dir, 'shop.yaml');
writeFileSync(SHOP, `apiVersion: v1
kind: ConfigMap
metadata: { name: meshlet-policy, namespace: shop }
data:
  policy.yaml: |
    apiVersion: policy.meshlet.io/v1alpha1
    kind: AuthorizationPolicy
    metadata: { name: orders, namespace: shop }
    spec:
      servers:
        - name: orders
          selector: { serviceAccount: orders }
          ports: [{ port: 8080, protocol: http }]
          routes:
            - name: list-orders
              methods: [GET]
              path: { prefix: /orders }
              callers:
                - spiffeId: ${FRONTEND}
`);

describe('meshlet policy explain --from X --to Y: both sides', () => {
  it('allowed by both: the verdict, each decision and the rule that decided (text)', async () => {
    const r = await run('policy', 'explain', WEB, SHOP, '--from', FRONTEND, '--to', ORDERS, '--port', '8080', '--method', 'GET', '--path', '/orders');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      `ALLOW  ${FRONTEND} -> ${ORDERS}, port 8080\n` +
        `  client: ALLOW  destination "orders" of client "frontend"  (policy ${WEB})\n` +
        `          reason: destination ${ORDERS} port 8080 is allowed by client "frontend", destination "orders" [destination-allowed]\n` +
        `  server: ALLOW  route "list-orders" (path prefix /orders GET)  (policy ${SHOP}: ConfigMap shop/meshlet-policy data[policy.yaml])\n` +
        `          reason: caller is authorized by route "list-orders" [route-allowed]\n` +
        `          server: orders, port 8080 (http), path /orders\n`,
    );
  });

  it('the client allows but the server denies: DENY, with the server route (json)', async () => {
    const r = await run('policy', 'explain', WEB, SHOP, '--from', FRONTEND, '--to', ORDERS, '--port', '8080', '--method', 'DELETE', '--path', '/orders/7', '--output', 'json');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.decision).toBe('deny');
    expect(out.client).toMatchObject({ decision: 'allow', client: 'frontend', route: 'orders', policy: WEB });
    expect(out.server).toMatchObject({ decision: 'deny', route: null, code: 'no-route-matched', server: 'orders', port: 8080, path: '/orders/7' });
  });

  it('the server allows but the client does not list the port: DENY from the client side', async () => {
    const r = await run('policy', 'explain', WEB, SHOP, '--from', FRONTEND, '--to', ORDERS, '--to-port', '80', '--port', '8080', '--method', 'GET', '--path', '/orders', '--output', 'json');
    const out = JSON.parse(r.stdout);
    expect(out.decision).toBe('deny');
    expect(out.client).toMatchObject({ decision: 'deny', code: 'port-not-allowed', reason: `destination ${ORDERS} port 80 matches client "frontend"'s destination "orders" only on port 8080; default is deny` });
    expect(out.server).toMatchObject({ decision: 'allow', route: 'list-orders' });
    expect(out.to).toEqual({ spiffeId: ORDERS, host: null, service: null, address: null, port: 80 });
  });

  it('egress by host: only the client side decides', async () => {
    const allowed = await run('policy', 'explain', WEB, '--from', FRONTEND, '--to-host', 'API.Stripe.com', '--port', '443');
    expect(allowed.code).toBe(0);
    expect(allowed.stdout).toContain(`ALLOW  ${FRONTEND} -> api.stripe.com, port 443\n`);
    expect(allowed.stdout).toContain('  server: (not a meshed workload: only the client side decides)\n');
    const denied = await run('policy', 'explain', WEB, '--from', FRONTEND, '--to-host', 'evil.example', '--port', '443', '--output', 'json');
    expect(JSON.parse(denied.stdout)).toMatchObject({ decision: 'deny', server: null, client: { code: 'no-destination-matched', reason: 'destination evil.example:443 is not among client "frontend"\'s destinations; default is deny' } });
  });

  it('a Service (NAME.NAMESPACE) and an address', async () => {
    const svc = JSON.parse((await run('policy', 'explain', WEB, '--from', FRONTEND, '--to-service', 'payments.pay', '--port', '80', '--output', 'json')).stdout);
    expect(svc.client).toMatchObject({ decision: 'allow', route: 'payments' });
    // NAME alone is in the caller's namespace (web), not pay.
    const own = JSON.parse((await run('policy', 'explain', WEB, '--from', FRONTEND, '--to-service', 'payments', '--port', '80', '--output', 'json')).stdout);
    expect(own.client.decision).toBe('deny');
    const addr = JSON.parse((await run('policy', 'explain', WEB, '--from', FRONTEND, '--to-address', '10.1.2.3', '--port', '5432', '--output', 'json')).stdout);
    expect(addr.client).toMatchObject({ decision: 'deny', reason: 'destination 10.1.2.3:5432 is not among client "frontend"\'s destinations; default is deny' });
  });

  it('no client selects the caller: the mesh client default (allow unless said otherwise)', async () => {
    const stranger = 'spiffe://cluster.local/ns/web/sa/batch';
    const open = JSON.parse((await run('policy', 'explain', WEB, '--from', stranger, '--to-host', 'example.com', '--port', '443', '--output', 'json')).stdout);
    expect(open).toMatchObject({ decision: 'allow', client: { client: null, code: 'no-client-policy', policy: null } });
    const closed = JSON.parse((await run('policy', 'explain', WEB, '--from', stranger, '--to-host', 'example.com', '--port', '443', '--mesh-client-default', 'deny', '--output', 'json')).stdout);
    expect(closed).toMatchObject({ decision: 'deny', client: { decision: 'deny', client: null, code: 'no-client-policy' } });
  });

  it('usage errors exit 2 with a precise message', async () => {
    const cases: [string[], RegExp][] = [
      [['--from', FRONTEND, '--to', ORDERS, '--port', '8080'], /port 8080 of spiffe:\/\/cluster.local\/ns\/shop\/sa\/orders is an http port: pass --method and --path/],
      [['--from', FRONTEND, '--to-host', '*.stripe.com', '--port', '443'], /--to-host: "\*\.stripe\.com" is a pattern: name one host/],
      [['--from', FRONTEND, '--to-address', 'not-an-ip', '--port', '443'], /--to-address must be an IPv4 or IPv6 address/],
      [['--from', FRONTEND, '--to-host', 'a.example', '--port', '443', '--mesh-client-default', 'open'], /--mesh-client-default must be one of allow, audit, all-authenticated, deny \(got "open"\)/],
      [['--from', 'spiffe://cluster.local/ns/web', '--to-host', 'a.example', '--port', '443'], /--from: spiffe:\/\/cluster.local\/ns\/web is not a workload identity/],
      [['--from', FRONTEND, '--to', ORDERS, '--server-account', 'orders', '--port', '8080'], /--server-account does not apply to a call/],
    ];
    for (const [args, message] of cases) {
      const r = await run('policy', 'explain', WEB, SHOP, ...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(message);
    }
  });

  it('the one-direction form rejects the call-only flags without a destination', async () => {
    const r = await run('policy', 'explain', SHOP, '--from', FRONTEND, '--port', '8080', '--method', 'GET', '--path', '/orders', '--to-port', '80');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--to-port asks about a call: pass --to, --to-host, --to-service or --to-address with it');
  });

  it('an invalid client policy among the files: exit 1 with its errors located', async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, `apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
spec:
  clients:
    - name: frontend
      selector: { serviceAccount: frontend }
      destinations:
        - { name: db, cidr: 10.0.0.0/99 }
`);
    const r = await run('policy', 'explain', bad, '--from', FRONTEND, '--to-host', 'a.example', '--port', '443');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${bad}:8:29: error POLICY_BAD_CIDR at spec.clients[0].destinations[0].cidr`);
  });
});
