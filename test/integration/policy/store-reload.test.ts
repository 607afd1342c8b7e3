import { mkdir, mkdtemp, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { decide } from '../../../src/data-plane/policy/decide.ts';
import { PolicyMetrics } from '../../../src/data-plane/policy/metrics.ts';
import { PolicyStore, type ReloadEvent } from '../../../src/data-plane/policy/store.ts';
import { kubeletWrite } from '../../support/kubelet-volume.ts';

const FRONTEND = 'spiffe://cluster.local/ns/web/sa/frontend';
const OPS = 'spiffe://cluster.local/ns/ops/sa/admin';

const policyAllowing = (caller: string) => `apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
spec:
  servers:
    - name: orders
      selector: { serviceAccount: orders }
      ports: [{ port: 8080, protocol: http }]
      routes:
        - name: orders
          path: { prefix: /orders }
          callers: [{ spiffeId: "${caller}" }]
`;
const INVALID = policyAllowing('spiffe://cluster.local/ns/web/sa/');

/** Polls until `check` passes; the watcher is event-driven, but a loaded machine may be slow. */
async function eventually(check: () => void, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      check();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

const request = (peer: string) => ({ peer, port: 8080, method: 'GET', path: '/orders/1' });

describe('PolicyStore reload on a kubelet-style ConfigMap volume', () => {
  let dir: string;
  let store: PolicyStore;
  let registry: Registry;
  let events: ReloadEvent[];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'meshlet-policy-'));
    registry = new Registry();
    events = [];
  });
  afterEach(async () => {
    store?.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function startStore(): Promise<ReloadEvent> {
    store = new PolicyStore({ dir, self: { namespace: 'shop', serviceAccount: 'orders' }, meshDefault: 'deny', metrics: new PolicyMetrics(registry), debounceMs: 20, pollMs: 200 });
    store.onReload((e) => events.push(e));
    return store.start();
  }
  const count = async (result: string) => {
    const metric = await registry.getSingleMetric('meshlet_policy_reloads_total')!.get();
    return metric.values.find((v) => v.labels.result === result)?.value ?? 0;
  };

  it('applies a valid change after the atomic ..data swap, seen through the same store reference', async () => {
    await kubeletWrite(dir, { 'policy.yaml': policyAllowing(FRONTEND) });
    expect((await startStore()).result).toBe('ok');
    expect(decide(store.current(), request(FRONTEND)).decision).toBe('allow');
    expect(decide(store.current(), request(OPS)).decision).toBe('deny');
    const firstHash = store.currentHash();

    await kubeletWrite(dir, { 'policy.yaml': policyAllowing(OPS) });
    await eventually(() => expect(decide(store.current(), request(OPS)).decision).toBe('allow'));
    expect(decide(store.current(), request(FRONTEND)).decision).toBe('deny');
    expect(store.currentHash()).not.toBe(firstHash);
    expect(await count('ok')).toBe(2);
    const info = await registry.getSingleMetric('meshlet_policy_info')!.get();
    expect(info.values).toEqual([{ labels: { hash: store.currentHash()!.slice(0, 12), version: 'policy.meshlet.io/v1alpha1' }, value: 1 }]);
    const last = await registry.getSingleMetric('meshlet_policy_last_reload_success_timestamp_seconds')!.get();
    expect(last.values[0]!.value).toBeGreaterThan(1_600_000_000);
  });

  it('keeps the last good policy when the new one is invalid, with its errors and counted', async () => {
    await kubeletWrite(dir, { 'policy.yaml': policyAllowing(FRONTEND) });
    await startStore();
    const good = store.current();

    await kubeletWrite(dir, { 'policy.yaml': INVALID });
    await eventually(() => expect(events.some((e) => e.result === 'invalid')).toBe(true));
    const invalid = events.find((e) => e.result === 'invalid')!;
    expect(invalid.errors!.map((e) => e.code)).toEqual(['POLICY_BAD_SPIFFE_ID']);
    expect(invalid.errors![0]!.line).toBe(11);
    expect(store.current()).toBe(good);
    expect(decide(store.current(), request(FRONTEND)).decision).toBe('allow');
    expect(await count('invalid')).toBe(1);

    // The safety poll sees the same bad bytes again: reported as unchanged, not re-counted as invalid.
    await eventually(() => expect(events.filter((e) => e.result === 'unchanged').length).toBeGreaterThan(1));
    expect(await count('invalid')).toBe(1);

    // Fixing it applies again.
    await kubeletWrite(dir, { 'policy.yaml': policyAllowing(OPS) });
    await eventually(() => expect(decide(store.current(), request(OPS)).decision).toBe('allow'));
  });

  it('keeps the last good policy when the key is deleted', async () => {
    await kubeletWrite(dir, { 'policy.yaml': policyAllowing(FRONTEND) });
    await startStore();
    const good = store.current();
    await kubeletWrite(dir, { 'other.yaml': 'x: 1\n' });
    await eventually(() => expect(events.some((e) => e.result === 'deleted')).toBe(true));
    expect(store.current()).toBe(good);
    expect(decide(store.current(), request(FRONTEND)).decision).toBe('allow');
    expect(await count('deleted')).toBe(1);
  });

  it('reports an unreadable policy and keeps the last good one', async () => {
    await kubeletWrite(dir, { 'policy.yaml': policyAllowing(FRONTEND) });
    await startStore();
    const good = store.current();
    // The key turns into something no one can read as a file (a mode change would not stop root).
    const realDir = join(dir, await readlink(join(dir, '..data')));
    await rm(join(realDir, 'policy.yaml'));
    await mkdir(join(realDir, 'policy.yaml'));
    await store.reload();
    const ev = events.find((e) => e.result === 'unreadable')!;
    expect(ev.errors![0]!.code).toBe('POLICY_UNREADABLE');
    expect(ev.errors![0]!.message).toContain('EISDIR');
    expect(store.current()).toBe(good);
    expect(decide(store.current(), request(FRONTEND)).decision).toBe('allow');
    expect(await count('unreadable')).toBe(1);
  });

  it('with no policy at all the mesh default applies, and a first policy arriving is applied', async () => {
    expect((await startStore()).result).toBe('deleted');
    expect(decide(store.current(), request(FRONTEND))).toMatchObject({ decision: 'deny', code: 'no-policy' });
    await kubeletWrite(dir, { 'policy.yaml': policyAllowing(FRONTEND) });
    await eventually(() => expect(decide(store.current(), request(FRONTEND)).decision).toBe('allow'));
  });
});
