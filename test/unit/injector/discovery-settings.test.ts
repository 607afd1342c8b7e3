// Issue 14 item 3: discovery is turned on once for the mesh, in the injector, and written into
// every sidecar — which reads exactly what the injector wrote.
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/common/config/env.ts';
import { applyJsonPatch, injectPod, readInjectionSettings, type Pod } from '../../../src/control-plane/injector/patch/index.ts';
import { readSidecarConfig } from '../../../src/data-plane/sidecar/sidecar-env.ts';

const pod: Pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'shop' }, spec: { containers: [{ name: 'app', image: 'app:1', ports: [{ containerPort: 8080 }] }] } } as Pod;

function sidecarEnv(settingsEnv: Record<string, string>): Record<string, string> {
  const r = injectPod(pod, 'shop', readInjectionSettings(settingsEnv));
  if (r.outcome !== 'injected') throw new Error(r.message);
  const proxy = (applyJsonPatch(pod, r.patch) as Pod).spec.initContainers!.find((c) => c.name === 'meshlet-proxy')!;
  return Object.fromEntries((proxy.env as { name: string; value?: string }[]).filter((e) => e.value !== undefined).map((e) => [e.name, e.value!]));
}

describe('discovery settings in the injector', () => {
  it('off by default: no discovery variable in the sidecar', () => {
    const env = sidecarEnv({});
    expect(env.MESHLET_DISCOVERY).toBeUndefined();
  });

  it('on: the sidecar gets MESHLET_DISCOVERY and the cluster it belongs to, and reads them', () => {
    const env = sidecarEnv({ MESHLET_DISCOVERY: 'on', MESHLET_POD_CIDRS: '10.244.0.0/16', MESHLET_SERVICE_CIDRS: '10.96.0.0/12', MESHLET_CLUSTER_DOMAIN: 'corp.local' });
    expect(env).toMatchObject({ MESHLET_DISCOVERY: 'on', MESHLET_POD_CIDRS: '10.244.0.0/16', MESHLET_SERVICE_CIDRS: '10.96.0.0/12', MESHLET_CLUSTER_DOMAIN: 'corp.local' });
    const config = readSidecarConfig({ ...env, MESHLET_NAMESPACE: 'shop', MESHLET_SERVICE_ACCOUNT: 'sa' });
    expect(config).toMatchObject({ discovery: 'on', clusterDomain: 'corp.local', podCidrs: ['10.244.0.0/16'], serviceCidrs: ['10.96.0.0/12'] });
  });

  it('on without the CIDRs: the injector refuses its configuration, naming both variables', () => {
    expect(() => readInjectionSettings({ MESHLET_DISCOVERY: 'on' })).toThrow(ConfigError);
    expect(() => readInjectionSettings({ MESHLET_DISCOVERY: 'on' })).toThrow(/MESHLET_POD_CIDRS[\s\S]*MESHLET_SERVICE_CIDRS/);
  });
});
