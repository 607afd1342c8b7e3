import { describe, expect, it } from 'vitest';
import { readSidecarConfig } from '../../../src/data-plane/sidecar/sidecar-env.ts';
import { readInterceptionConfig } from '../../../src/control-plane/injector/iptables/env.ts';
import { applyJsonPatch, DEFAULT_INJECTION_SETTINGS, injectPod, type Pod } from '../../../src/control-plane/injector/patch/index.ts';
import { podFixtures } from './golden-support.ts';

/**
 * The injector writes the environment the sidecar and the iptables init container read. For
 * every injected fixture, that environment (downward API fields resolved as kubelet would)
 * must pass the readers' own validation, and the two must agree on every port.
 */
type EnvEntry = { name: string; value?: string; valueFrom?: { fieldRef: { fieldPath: string } } };
type InjectedContainer = { name: string; env: EnvEntry[]; readinessProbe?: { httpGet?: { path: string; port: number } } };

function resolveEnv(entries: EnvEntry[], pod: Pod): Record<string, string> {
  const fields: Record<string, string> = {
    'metadata.namespace': pod.metadata?.namespace ?? 'default',
    'metadata.name': pod.metadata?.name ?? 'pod',
    'spec.serviceAccountName': pod.spec.serviceAccountName ?? 'default',
  };
  const env: Record<string, string> = {};
  for (const e of entries) {
    const v = e.valueFrom ? fields[e.valueFrom.fieldRef.fieldPath] : e.value;
    if (v === undefined) throw new Error(`unresolvable env ${e.name}`);
    env[e.name] = v;
  }
  return env;
}

describe('injected environment = the sidecar configuration contract', () => {
  for (const { name, pod } of podFixtures()) {
    const result = injectPod(pod, pod.metadata?.namespace ?? 'default', DEFAULT_INJECTION_SETTINGS);
    if (result.outcome !== 'injected') continue;
    it(`${name}: sidecar and iptables init accept their env and agree on ports`, () => {
      const injected = applyJsonPatch(pod, result.patch);
      const all = [...(injected.spec.initContainers ?? []), ...injected.spec.containers] as unknown as InjectedContainer[];
      const proxy = all.find((c) => c.name === 'meshlet-proxy')!;
      const init = all.find((c) => c.name === 'meshlet-init')!;
      const sidecar = readSidecarConfig(resolveEnv(proxy.env, injected));
      const rules = readInterceptionConfig(resolveEnv(init.env, injected));

      expect(sidecar.spiffeId).toBe(`spiffe://cluster.local/ns/${pod.metadata?.namespace}/sa/${pod.spec.serviceAccountName ?? 'default'}`);
      expect(rules.inbound).toEqual(sidecar.inboundPorts.map((p) => ({ appPort: p.appPort, listenPort: p.listenPort })));
      expect(rules.outboundPort).toBe(sidecar.outboundPort);
      expect(rules.adminPort).toBe(sidecar.adminPort);
      expect(rules.inboundCatchAllPort).toBe(sidecar.inboundCatchAllPort);

      // Every rewritten probe points at a probe the sidecar knows.
      for (const c of injected.spec.containers) {
        for (const kind of ['liveness', 'readiness', 'startup'] as const) {
          const get = c[`${kind}Probe`]?.httpGet;
          if (get && typeof get.path === 'string' && get.path.startsWith('/app-health/')) {
            expect(get.port).toBe(sidecar.adminPort);
            expect(get.path).toBe(`/app-health/${c.name}/${kind}`);
            expect(sidecar.appProbes[`${c.name}/${kind}`]).toBeDefined();
          }
        }
      }
    });
  }
});
