import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request as httpsRequest, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { validatePolicyConfigMap } from '../../../src/control-plane/injector/validate.ts';
import { createWebhookServer } from '../../../src/control-plane/injector/webhook-server.ts';
import { decide } from '../../../src/data-plane/policy/decide.ts';
import { PolicyMetrics } from '../../../src/data-plane/policy/metrics.ts';
import { PolicyStore, type ReloadEvent } from '../../../src/data-plane/policy/store.ts';
import { kubeletWrite } from '../../support/kubelet-volume.ts';
import { aliasBombPolicy, bareAliasBomb, goodPolicy, manyRoutesPolicy, overRouteCapPolicy } from '../../unit/policy/hostile-policies.ts';
import { servingCertificate } from '../policy/serving-certificate.ts';
import { meshOfTwo, ordersPolicy, type MeshOfTwo } from '../sidecar/mesh-of-two.ts';

/**
 * Issue 11 item 7 — a policy ConfigMap could crash the sidecar. A YAML alias bomb ("billion
 * laughs") threw out of yaml's toJS() inside the reload and killed every sidecar mounting it
 * (a crash loop at start-up); /validate answered 500; `policy check` printed a stack trace;
 * a valid 10,000-route policy stalled requests for 1.4 s and tripled the heap. Now every
 * stage is bounded (docs/policy.md "Limits"), a hostile document is an invalid policy like
 * any other, and a large one is parsed off the event loop.
 */
const FRONTEND = 'spiffe://cluster.local/ns/web/sa/frontend';
const OPS = 'spiffe://cluster.local/ns/ops/sa/admin';
const BIN = fileURLToPath(new URL('../../../bin/meshlet.js', import.meta.url));
const request = (peer: string) => ({ peer, port: 8080, method: 'GET', path: '/orders/1' });

async function eventually(check: () => void | Promise<void>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

describe('alias bomb and oversized policies through the PolicyStore (kubelet ..data swap)', () => {
  let dir: string;
  let store: PolicyStore | undefined;
  let registry: Registry;
  let events: ReloadEvent[];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'meshlet-bomb-'));
    registry = new Registry();
    events = [];
  });
  afterEach(async () => {
    store?.close();
    store = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  function newStore(parse?: ConstructorParameters<typeof PolicyStore>[0]['parse']): PolicyStore {
    store = new PolicyStore({ dir, self: { namespace: 'shop', serviceAccount: 'orders' }, meshDefault: 'deny', metrics: new PolicyMetrics(registry), debounceMs: 20, pollMs: 200, ...(parse ? { parse } : {}) });
    store.onReload((e) => events.push(e));
    return store;
  }
  const metric = async (name: string, labels: Record<string, string>) => {
    const m = await registry.getSingleMetric(name)!.get();
    return m.values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value ?? 0;
  };

  it('a bomb arriving by reload is refused with POLICY_ALIAS_LIMIT, counted, and the last good policy stays', async () => {
    await kubeletWrite(dir, { 'policy.yaml': goodPolicy(FRONTEND) });
    expect((await newStore().start()).result).toBe('ok');
    const good = store!.current();

    await kubeletWrite(dir, { 'policy.yaml': aliasBombPolicy() });
    await eventually(() => expect(events.some((e) => e.result === 'invalid')).toBe(true));
    const ev = events.find((e) => e.result === 'invalid')!;
    expect(ev.errors!.map((e) => [e.code, e.line, e.col])).toEqual([['POLICY_ALIAS_LIMIT', 4, 10]]);
    expect(store!.current()).toBe(good);
    expect(decide(store!.current(), request(FRONTEND)).decision).toBe('allow');
    expect(await metric('meshlet_policy_reloads_total', { result: 'invalid' })).toBe(1);
    expect(await metric('meshlet_policy_rejected_total', { code: 'POLICY_ALIAS_LIMIT' })).toBe(1);
  });

  it('a bomb present at start-up: start() resolves (no crash loop), the mesh default applies, a fixed policy then applies', async () => {
    await kubeletWrite(dir, { 'policy.yaml': bareAliasBomb() });
    const first = await newStore().start();
    expect(first).toMatchObject({ result: 'invalid', server: null });
    expect(first.errors![0]!.code).toBe('POLICY_ALIAS_LIMIT');
    expect(decide(store!.current(), request(FRONTEND))).toMatchObject({ decision: 'deny', code: 'no-policy' });
    await kubeletWrite(dir, { 'policy.yaml': goodPolicy(FRONTEND) });
    await eventually(() => expect(decide(store!.current(), request(FRONTEND)).decision).toBe('allow'));
  });

  it('a policy over the route cap is refused with the cap named (parsed off the event loop), the last good one stays', async () => {
    await kubeletWrite(dir, { 'policy.yaml': goodPolicy(FRONTEND) });
    await newStore().start();
    const good = store!.current();
    await kubeletWrite(dir, { 'policy.yaml': overRouteCapPolicy() });
    await eventually(() => expect(events.some((e) => e.result === 'invalid')).toBe(true));
    const ev = events.find((e) => e.result === 'invalid')!;
    expect(ev.parsedIn).toBe('worker');
    expect(ev.errors).toEqual([expect.objectContaining({ code: 'POLICY_LIMIT', path: 'spec.servers[0].routes', message: 'spec.servers[0].routes has 1001 routes; the limit is 1000 routes per server (docs/policy.md#limits)' })]);
    expect(store!.current()).toBe(good);
    expect(await metric('meshlet_policy_rejected_total', { code: 'POLICY_LIMIT' })).toBe(1);
  });

  it('a valid policy at the route cap is parsed in a worker thread and applied', async () => {
    await kubeletWrite(dir, { 'policy.yaml': manyRoutesPolicy(1_000) });
    const first = await newStore().start();
    expect(first).toMatchObject({ result: 'ok', parsedIn: 'worker', server: 'orders' });
    expect(store!.current().routes).toHaveLength(1_000);
    expect(decide(store!.current(), { peer: 'spiffe://cluster.local/ns/ns7/sa/x', port: 8080, method: 'GET', path: '/api/v1/res7/items' })).toMatchObject({ decision: 'allow', route: 'r-7' });
  });

  it('a parse that outgrows the worker heap cap refuses the policy (POLICY_TOO_COMPLEX) instead of growing the sidecar', async () => {
    await kubeletWrite(dir, { 'policy.yaml': goodPolicy(OPS) });
    await newStore({ minBytes: 0, maxHeapMb: 4 }).start().catch(() => undefined);
    const start = events[0]!;
    // With a 4 MiB heap even the good policy cannot be parsed: refused, not a crash.
    expect(start).toMatchObject({ result: 'invalid', parsedIn: 'worker' });
    expect(start.errors![0]).toMatchObject({ code: 'POLICY_TOO_COMPLEX', message: 'parsing the policy needs more than the 4 MiB parser heap' });
    expect(await metric('meshlet_policy_rejected_total', { code: 'POLICY_TOO_COMPLEX' })).toBe(1);
  });

  it('a parse past its deadline is refused and retried on the next reload (a loaded node is not a bad policy)', async () => {
    await kubeletWrite(dir, { 'policy.yaml': goodPolicy(OPS) });
    const first = await newStore({ minBytes: 0, timeoutMs: 1 }).start();
    expect(first.errors![0]).toMatchObject({ code: 'POLICY_TOO_COMPLEX', message: 'parsing the policy took longer than 1 ms' });
    expect((await store!.reload()).result).toBe('invalid'); // not "unchanged": tried again
  });
});

describe('alias bomb through POST /validate over HTTPS', () => {
  let server: Server;
  let port: number;
  let ca: string;
  beforeAll(async () => {
    const { cert, key } = await servingCertificate();
    ca = cert;
    server = createWebhookServer({ cert, key, routes: { '/validate': validatePolicyConfigMap }, maxBodyBytes: 3 * 1024 * 1024, requestTimeoutMs: 10_000 });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  function review(uid: string, data: Record<string, string>) {
    return JSON.stringify({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: { uid, operation: 'UPDATE', namespace: 'shop', name: 'orders-policy', object: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'orders-policy', namespace: 'shop' }, data } },
    });
  }
  function post(body: string) {
    return new Promise<{ status: number; json: any }>((resolve, reject) => {
      const req = httpsRequest({ host: '127.0.0.1', port, path: '/validate', method: 'POST', ca, headers: { 'content-type': 'application/json' } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode!, json: JSON.parse(text) }));
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  it('denies the bomb with its coded reason: AdmissionReview allowed=false, never a 500', async () => {
    const r = await post(review('uid-bomb', { 'policy.yaml': aliasBombPolicy() }));
    expect(r.status).toBe(200);
    expect(r.json.response).toMatchObject({ uid: 'uid-bomb', allowed: false, status: { code: 422, reason: 'Invalid' } });
    expect(r.json.response.status.message).toBe(
      'invalid meshlet policy (1 error):\nConfigMap shop/orders-policy data[policy.yaml]:4:10: error POLICY_ALIAS_LIMIT: YAML aliases expand past the limit of 100 (an alias bomb, or one anchor reused too often; docs/policy.md#limits)',
    );
  });

  it('denies a policy over a cap, naming the cap', async () => {
    const r = await post(review('uid-cap', { 'policy.yaml': overRouteCapPolicy() }));
    expect(r.json.response.allowed).toBe(false);
    expect(r.json.response.status.message).toContain('error POLICY_LIMIT at spec.servers[0].routes: spec.servers[0].routes has 1001 routes; the limit is 1000 routes per server');
  });

  it('a failure inside validation is a denial naming it, not a 500', () => {
    const object = {
      kind: 'ConfigMap',
      metadata: { name: 'x', namespace: 'shop' },
      get data(): Record<string, string> {
        throw new Error('unreadable object');
      },
    };
    expect(validatePolicyConfigMap({ uid: 'u', operation: 'CREATE', object } as never)).toMatchObject({ allowed: false, status: { code: 422, message: 'error POLICY_INTERNAL: the policy could not be validated: unreadable object' } });
  });
});

describe('alias bomb through `meshlet policy check` (a real process)', () => {
  it('prints one coded line, no stack trace, and exits 1', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'meshlet-bomb-cli-'));
    try {
      const file = join(dir, 'bomb.yaml');
      await writeFile(file, aliasBombPolicy());
      const child = spawn(process.execPath, [BIN, 'policy', 'check', file], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
      expect(code).toBe(1);
      expect(stderr).toBe(`${file}:4:10: error POLICY_ALIAS_LIMIT: YAML aliases expand past the limit of 100 (an alias bomb, or one anchor reused too often; docs/policy.md#limits)\n`);
      expect(stdout).toBe(`${file}: INVALID, 1 error\n`);
      expect(stderr).not.toMatch(/^\s+at /m);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('a real `meshlet sidecar` process survives the bomb at start-up and at reload', () => {
  let mesh: MeshOfTwo;
  beforeAll(async () => {
    mesh = await meshOfTwo();
  });
  afterAll(async () => {
    await mesh?.close();
  });

  it('starts ready with the bomb mounted, applies a good policy, keeps it through a second bomb', async () => {
    await kubeletWrite(mesh.ordersPolicyDir, { 'policy.yaml': aliasBombPolicy() });
    const child = spawn(process.execPath, [BIN, 'sidecar'], { env: { PATH: process.env.PATH ?? '', ...mesh.ordersEnv, MESHLET_LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    const admin = `http://127.0.0.1:${mesh.ports.ordersAdmin}`;
    const metrics = async () => (await fetch(`${admin}/metrics`)).text();
    const value = (text: string, series: string) => Number(new RegExp(`^${series.replace(/[{}"]/g, '\\$&')} (\\d+)`, 'm').exec(text)?.[1] ?? '0');
    try {
      await eventually(() => {
        if (child.exitCode !== null) throw new Error(`sidecar exited ${child.exitCode}: ${stderr}`);
        expect(stdout).toContain('meshlet sidecar: ready');
      }, 60_000);
      expect((await fetch(`${admin}/ready`)).status).toBe(200);
      let text = await metrics();
      expect(value(text, 'meshlet_policy_rejected_total{code="POLICY_ALIAS_LIMIT"}')).toBe(1);
      expect(stderr).toContain('POLICY_ALIAS_LIMIT');

      const good = ordersPolicy(mesh.appPort, mesh.tcpAppPort);
      const goodHash = createHash('sha256').update(good).digest('hex').slice(0, 12);
      await kubeletWrite(mesh.ordersPolicyDir, { 'policy.yaml': good });
      await eventually(async () => expect(await metrics()).toContain(`meshlet_policy_info{hash="${goodHash}",version="policy.meshlet.io/v1alpha1"} 1`));

      await kubeletWrite(mesh.ordersPolicyDir, { 'policy.yaml': aliasBombPolicy().replace('lol', 'lul') });
      await eventually(async () => expect(value(await metrics(), 'meshlet_policy_rejected_total{code="POLICY_ALIAS_LIMIT"}')).toBe(2));
      // One more safety poll (5 s) after the rejection: the process is still serving, the good policy in force.
      const unchanged = value(await metrics(), 'meshlet_policy_reloads_total{result="unchanged"}');
      await eventually(async () => expect(value(await metrics(), 'meshlet_policy_reloads_total{result="unchanged"}')).toBeGreaterThan(unchanged));
      expect(child.exitCode).toBe(null);
      expect((await fetch(`${admin}/ready`)).status).toBe(200);
      text = await metrics();
      expect(text).toContain(`meshlet_policy_info{hash="${goodHash}",version="policy.meshlet.io/v1alpha1"} 1`);
      expect(value(text, 'meshlet_policy_reloads_total{result="invalid"}')).toBe(2);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  });
});
