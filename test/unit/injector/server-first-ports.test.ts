// meshlet.io/server-first-ports: the pod's own list of server-speaks-first destination ports,
// written as MESHLET_SERVER_FIRST_PORTS — what the injector writes is what the sidecar reads.
import { describe, expect, it } from 'vitest';
import { applyJsonPatch, DEFAULT_INJECTION_SETTINGS, injectPod, PodRefusedError, type Pod } from '../../../src/control-plane/injector/patch/index.ts';
import { SERVER_FIRST_PORTS } from '../../../src/data-plane/proxy/detect/port-protocol.ts';
import { readSidecarConfig } from '../../../src/data-plane/sidecar/sidecar-env.ts';

function sidecarConfig(annotations: Record<string, string>) {
  const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'shop', annotations }, spec: { containers: [{ name: 'app', image: 'a:1' }] } } as Pod;
  const r = injectPod(pod, 'shop', DEFAULT_INJECTION_SETTINGS);
  if (r.outcome !== 'injected') throw new Error(r.message);
  const proxy = (applyJsonPatch(pod, r.patch) as Pod).spec.initContainers!.find((c) => c.name === 'meshlet-proxy')!;
  const env = Object.fromEntries((proxy.env as { name: string; value?: string }[]).filter((e) => e.value !== undefined).map((e) => [e.name, e.value!]));
  return { env, config: readSidecarConfig({ ...env, MESHLET_NAMESPACE: 'shop', MESHLET_SERVICE_ACCOUNT: 'sa' }) };
}

describe('meshlet.io/server-first-ports', () => {
  it('absent: the sidecar keeps its default list', () => {
    const { env, config } = sidecarConfig({});
    expect(env.MESHLET_SERVER_FIRST_PORTS).toBeUndefined();
    expect(config.serverFirstPorts).toEqual(SERVER_FIRST_PORTS);
  });

  it('a list replaces it', () => {
    const { env, config } = sidecarConfig({ 'meshlet.io/server-first-ports': '2525, 3307' });
    expect(env.MESHLET_SERVER_FIRST_PORTS).toBe('2525,3307');
    expect(config.serverFirstPorts).toEqual(new Set([2525, 3307]));
  });

  it('"" detects on every port (written as none)', () => {
    const { env, config } = sidecarConfig({ 'meshlet.io/server-first-ports': '' });
    expect(env.MESHLET_SERVER_FIRST_PORTS).toBe('none');
    expect(config.serverFirstPorts.size).toBe(0);
  });

  it('a bad value refuses the pod, naming the annotation and the entry', () => {
    expect(() => sidecarConfig({ 'meshlet.io/server-first-ports': '25,smtp' })).toThrow(PodRefusedError);
    expect(() => sidecarConfig({ 'meshlet.io/server-first-ports': '25,smtp' })).toThrow(/meshlet\.io\/server-first-ports.*"smtp"/s);
  });
});
