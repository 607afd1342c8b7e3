import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/common/config/env.ts';
import { applyJsonPatch, injectPod, readInjectionSettings, type Pod } from '../../../src/control-plane/injector/patch/index.ts';

/**
 * Issue 16 item 1 — MESHLET_DEFAULT_CLIENT_POLICY in the injector's settings, as
 * MESHLET_DEFAULT_POLICY is: read and validated at start, written into every sidecar — only when
 * it is not `allow`, the sidecar's own default, so pods injected with the default are unchanged.
 */
const POD: Pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web-1', namespace: 'web' }, spec: { serviceAccountName: 'frontend', containers: [{ name: 'app', image: 'web:1', ports: [{ containerPort: 8080 }] }] } } as unknown as Pod;

function sidecarEnv(env: Record<string, string>): Map<string, string | undefined> {
  const r = injectPod(structuredClone(POD), 'web', readInjectionSettings(env));
  if (r.outcome !== 'injected') throw new Error(`not injected: ${JSON.stringify(r)}`);
  const pod = applyJsonPatch(structuredClone(POD), r.patch) as unknown as { spec: { initContainers?: { name: string; env?: { name: string; value?: string }[] }[]; containers: { name: string; env?: { name: string; value?: string }[] }[] } };
  const proxy = [...(pod.spec.initContainers ?? []), ...pod.spec.containers].find((c) => c.name === 'meshlet-proxy');
  if (!proxy) throw new Error('no meshlet-proxy container');
  return new Map((proxy.env ?? []).map((e) => [e.name, e.value]));
}

describe('the injector and MESHLET_DEFAULT_CLIENT_POLICY', () => {
  it('absent or allow: not written (the sidecar default applies)', () => {
    expect(sidecarEnv({}).has('MESHLET_DEFAULT_CLIENT_POLICY')).toBe(false);
    expect(sidecarEnv({ MESHLET_DEFAULT_CLIENT_POLICY: 'allow' }).has('MESHLET_DEFAULT_CLIENT_POLICY')).toBe(false);
  });

  it('audit, all-authenticated, deny: written into the sidecar', () => {
    for (const v of ['audit', 'all-authenticated', 'deny']) expect(sidecarEnv({ MESHLET_DEFAULT_CLIENT_POLICY: v }).get('MESHLET_DEFAULT_CLIENT_POLICY')).toBe(v);
  });

  it('an unknown value stops the injector, naming the variable', () => {
    expect(() => readInjectionSettings({ MESHLET_DEFAULT_CLIENT_POLICY: 'open' })).toThrow(ConfigError);
    expect(() => readInjectionSettings({ MESHLET_DEFAULT_CLIENT_POLICY: 'open' })).toThrow(/MESHLET_DEFAULT_CLIENT_POLICY="open"/);
  });
});
