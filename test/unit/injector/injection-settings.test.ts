import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/common/config/env.ts';
import { DEFAULT_INJECTION_SETTINGS, readInjectionSettings, WEAKENING_ANNOTATIONS } from '../../../src/control-plane/injector/patch/index.ts';

describe('injector settings from the environment', () => {
  it('defaults to the documented values', () => {
    expect(readInjectionSettings({})).toEqual(DEFAULT_INJECTION_SETTINGS);
    expect(DEFAULT_INJECTION_SETTINGS).toMatchObject({ nativeSidecar: true, failureMode: 'deny', excludedNamespaces: ['kube-system', 'kube-public'] });
    // Pods may set every annotation that weakens enforcement unless the operator says otherwise.
    expect(DEFAULT_INJECTION_SETTINGS.allowedPodOverrides).toEqual([...WEAKENING_ANNOTATIONS]);
  });

  it('reads every variable', () => {
    const s = readInjectionSettings({
      MESHLET_INJECTOR_PROXY_IMAGE: 'registry.example/meshlet:1',
      MESHLET_INJECTOR_IMAGE_PULL_POLICY: 'Always',
      MESHLET_INJECTOR_NATIVE_SIDECAR: 'false',
      MESHLET_TRUST_DOMAIN: 'prod.example',
      MESHLET_CA_ADDRESS: 'ca.mesh.svc:9443',
      MESHLET_DEFAULT_POLICY: 'audit',
      MESHLET_INJECTOR_FAILURE_MODE: 'allow',
      MESHLET_INJECTOR_EXCLUDED_NAMESPACES: 'kube-system, infra',
      MESHLET_INJECTOR_POD_OVERRIDES: 'meshlet.io/skip-outbound-cidrs, meshlet.io/opaque-ports',
    });
    expect(s).toEqual({
      image: 'registry.example/meshlet:1',
      imagePullPolicy: 'Always',
      nativeSidecar: false,
      trustDomain: 'prod.example',
      caAddress: 'ca.mesh.svc:9443',
      defaultPolicy: 'audit',
      defaultClientPolicy: 'allow',
      failureMode: 'allow',
      excludedNamespaces: ['kube-system', 'infra'],
      allowedPodOverrides: ['meshlet.io/skip-outbound-cidrs', 'meshlet.io/opaque-ports'],
      discovery: 'off',
      clusterDomain: 'cluster.local',
      podCidrs: [],
      serviceCidrs: [],
    });
    expect(Object.isFrozen(s)).toBe(true);
  });

  it('reports every bad variable at once', () => {
    let error: unknown;
    try {
      readInjectionSettings({ MESHLET_INJECTOR_NATIVE_SIDECAR: 'yes', MESHLET_INJECTOR_FAILURE_MODE: 'ignore', MESHLET_CA_ADDRESS: 'no-port', MESHLET_TRUST_DOMAIN: 'UPPER' });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems.map((p) => p.variable).sort()).toEqual(['MESHLET_CA_ADDRESS', 'MESHLET_INJECTOR_FAILURE_MODE', 'MESHLET_INJECTOR_NATIVE_SIDECAR', 'MESHLET_TRUST_DOMAIN']);
  });

  it.each([
    ['none', []],
    ['all', [...WEAKENING_ANNOTATIONS]],
    ['meshlet.io/permissive-ports', ['meshlet.io/permissive-ports']],
  ])('MESHLET_INJECTOR_POD_OVERRIDES=%s', (raw, allowed) => {
    expect(readInjectionSettings({ MESHLET_INJECTOR_POD_OVERRIDES: raw }).allowedPodOverrides).toEqual(allowed);
  });

  it.each(['false', 'none,meshlet.io/opaque-ports', 'meshlet.io/log-level', 'skip-inbound-ports'])('MESHLET_INJECTOR_POD_OVERRIDES=%s is refused, naming the annotations it may list', (raw) => {
    expect(() => readInjectionSettings({ MESHLET_INJECTOR_POD_OVERRIDES: raw })).toThrow(/MESHLET_INJECTOR_POD_OVERRIDES=.*must be all, none, or a comma-separated list of meshlet.io\/skip-inbound-ports, /);
  });
});
