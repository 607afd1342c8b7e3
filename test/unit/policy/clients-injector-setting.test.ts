import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/common/config/env.ts';
import { applyJsonPatch, injectPod, readInjectionSettings, type Pod } from '../../../src/control-plane/injector/patch/index.ts';

/**
 * Issue 16 item 1 — MESHLET_DEFAULT_CLIENT_POLICY in the injector's settings, as
 * MESHLET_DEFAULT_POLICY is: read and validated at start, written into every sidecar — only when
 * it is not `allow`, the sidecar's own default, so pods injected with the default are unchanged.
 */
const POD: Pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web-1', namespace: 'web' }, spec: { serviceAccountName: 'frontend', containers: [{ name: 'app', image: 'web:1', ports: [{ containerPort: 8080 }] }] } } as unknown as Pod;

function withAnnotation(value: string): Pod {
  const pod = structuredClone(POD);
  pod.metadata!.annotations = { 'meshlet.io/default-client-policy': value };
  return pod;
}

function sidecarEnv(env: Record<string, string>, source: Pod = POD): Map<string, string | undefined> {
  const r = injectPod(structuredClone(source), 'web', readInjectionSettings(env));
  if (r.outcome !== 'injected') throw new Error(`not injected: ${JSON.stringify(r)}`);
  const pod = applyJsonPatch(structuredClone(source), r.patch) as unknown as { spec: { initContainers?: { name: string; env?: { name: string; value?: string }[] }[]; containers: { name: string; env?: { name: string; value?: string }[] }[] } };
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

describe('the pod annotation meshlet.io/default-client-policy', () => {
  it('replaces the mesh client default for that pod (allow: not written, as the setting)', () => {
    expect(sidecarEnv({}, withAnnotation('deny')).get('MESHLET_DEFAULT_CLIENT_POLICY')).toBe('deny');
    expect(sidecarEnv({ MESHLET_DEFAULT_CLIENT_POLICY: 'deny' }, withAnnotation('deny')).get('MESHLET_DEFAULT_CLIENT_POLICY')).toBe('deny');
    expect(sidecarEnv({ MESHLET_DEFAULT_CLIENT_POLICY: 'audit' }, withAnnotation('allow')).has('MESHLET_DEFAULT_CLIENT_POLICY')).toBe(false);
  });

  it('weaker than the mesh client default: a weakening, refused unless MESHLET_INJECTOR_POD_OVERRIDES allows it; as strict or stricter: always accepted', () => {
    const inject = (value: string, env: Record<string, string>) => () => injectPod(withAnnotation(value), 'web', readInjectionSettings(env));
    expect(inject('allow', { MESHLET_DEFAULT_CLIENT_POLICY: 'deny', MESHLET_INJECTOR_POD_OVERRIDES: 'none' })).toThrow(
      expect.objectContaining({ code: 'INJECTOR_OVERRIDE_FORBIDDEN', message: 'annotation meshlet.io/default-client-policy="allow" is not allowed on pods in this mesh (MESHLET_INJECTOR_POD_OVERRIDES=none): the client default "allow" is weaker than the mesh client default "deny"; remove it, or ask the mesh operator' }),
    );
    expect(inject('audit', { MESHLET_DEFAULT_CLIENT_POLICY: 'all-authenticated', MESHLET_INJECTOR_POD_OVERRIDES: 'none' })).toThrow(/weaker than the mesh client default "all-authenticated"/);
    expect(sidecarEnv({ MESHLET_DEFAULT_CLIENT_POLICY: 'audit', MESHLET_INJECTOR_POD_OVERRIDES: 'none' }, withAnnotation('all-authenticated')).get('MESHLET_DEFAULT_CLIENT_POLICY')).toBe('all-authenticated');
    expect(sidecarEnv({ MESHLET_DEFAULT_CLIENT_POLICY: 'deny', MESHLET_INJECTOR_POD_OVERRIDES: 'meshlet.io/default-client-policy' }, withAnnotation('allow')).has('MESHLET_DEFAULT_CLIENT_POLICY')).toBe(false);
  });

  it('an unknown value refuses the pod, naming the annotation', () => {
    expect(() => injectPod(withAnnotation('open'), 'web', readInjectionSettings({}))).toThrow(
      expect.objectContaining({ code: 'INJECTOR_ANNOTATION_INVALID', message: 'annotation meshlet.io/default-client-policy="open": must be one of allow, audit, all-authenticated, deny' }),
    );
  });
});
