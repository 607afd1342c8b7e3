import { describe, expect, it } from 'vitest';
import { injectManifest } from '../../../src/control-plane/injector/workloads.ts';
import { readInjectionSettings } from '../../../src/control-plane/injector/patch/settings.ts';
import { proxyNodeFlags } from '../../../src/control-plane/injector/patch/heap-settings.ts';
import { readInjectedPod } from '../../../src/dev/netns/injected-pod.ts';
import { HarnessError } from '../../../src/dev/netns/errors.ts';

// The network-namespace harness runs an injected pod's meshlet containers as kubelet would:
// the sidecar with the Node flags of the command the injector wrote.
const pod = (containers: object[]) => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'shop' }, spec: { serviceAccountName: 'sa', containers } });

describe('readInjectedPod: container commands', () => {
  it("the injected sidecar runs with the injector's Node flags; the app's own command is not read", () => {
    const manifest = pod([{ name: 'app', image: 'app', command: ['python3', '-m', 'http.server'], ports: [{ containerPort: 8080 }] }]);
    const injected = injectManifest(manifest, 'shop', readInjectionSettings({})).manifest as object;
    const spec = readInjectedPod(injected, { podIp: '10.0.0.2' });
    expect(spec.sidecars.map((c) => [c.name, c.nodeFlags, c.args])).toEqual([['meshlet-proxy', proxyNodeFlags(256 * 1024 * 1024), ['sidecar']]]);
    expect(spec.containers.map((c) => [c.name, c.nodeFlags])).toEqual([['app', []]]);
  });

  it('a meshlet container whose command is not `node [--flags] …/bin/meshlet.js` is E2E_UNSUPPORTED_SPEC', () => {
    const manifest = { ...pod([]), spec: { containers: [{ name: 'meshlet-proxy', command: ['sh', '-c', 'node /app/bin/meshlet.js'] }] } };
    expect(() => readInjectedPod(manifest)).toThrow(HarnessError);
    expect(() => readInjectedPod(manifest)).toThrow(/E2E_UNSUPPORTED_SPEC|cannot run/);
  });
});
