import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { parseDefaultPolicy } from '../../../src/data-plane/policy/default-policy.ts';
import { PolicySettingError } from '../../../src/data-plane/policy/errors.ts';
import { PolicyMetrics } from '../../../src/data-plane/policy/metrics.ts';

describe('PolicyMetrics', () => {
  it('exposes the reload family with every result at zero, and counts would-deny by route', async () => {
    const registry = new Registry();
    const metrics = new PolicyMetrics(registry);
    metrics.recordWouldDeny('admin');
    metrics.recordWouldDeny('admin');
    metrics.recordWouldDeny(null);
    const text = await registry.metrics();
    for (const result of ['ok', 'invalid', 'unreadable', 'deleted', 'unchanged']) {
      expect(text).toContain(`meshlet_policy_reloads_total{result="${result}"} 0`);
    }
    expect(text).toContain('meshlet_policy_info{hash="none",version="none"} 1');
    expect(text).toContain('meshlet_policy_audit_would_deny_total{route="admin"} 2');
    expect(text).toContain('meshlet_policy_audit_would_deny_total{route="unmatched"} 1');
  });

  it('keeps one info series: the policy in force', async () => {
    const registry = new Registry();
    const metrics = new PolicyMetrics(registry);
    metrics.recordReload({ result: 'ok', hash: 'a'.repeat(64), version: 'policy.meshlet.io/v1alpha1', server: 's' });
    metrics.recordReload({ result: 'invalid', hash: 'b'.repeat(64), server: 's', errors: [] });
    const info = await registry.getSingleMetric('meshlet_policy_info')!.get();
    expect(info.values).toEqual([{ labels: { hash: 'aaaaaaaaaaaa', version: 'policy.meshlet.io/v1alpha1' }, value: 1 }]);
    expect(await registry.metrics()).toContain('meshlet_policy_reloads_total{result="invalid"} 1');
  });
});

describe('MESHLET_DEFAULT_POLICY', () => {
  it('defaults to deny and accepts the three defaults', () => {
    expect(parseDefaultPolicy(undefined)).toBe('deny');
    expect(parseDefaultPolicy('')).toBe('deny');
    expect(parseDefaultPolicy('all-authenticated')).toBe('all-authenticated');
    expect(parseDefaultPolicy('audit')).toBe('audit');
  });
  it('refuses anything else by name, with a stable code', () => {
    expect(() => parseDefaultPolicy('allow')).toThrow(PolicySettingError);
    try {
      parseDefaultPolicy('Deny');
    } catch (err) {
      expect((err as PolicySettingError).code).toBe('POLICY_BAD_SETTING');
      expect((err as Error).message).toBe('MESHLET_DEFAULT_POLICY must be one of deny, all-authenticated, audit (got "Deny")');
    }
  });
});
