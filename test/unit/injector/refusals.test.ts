import { describe, expect, it } from 'vitest';
import { DEFAULT_INJECTION_SETTINGS, injectPod, PodRefusedError, type Pod } from '../../../src/control-plane/injector/patch/index.ts';
import { loadPod } from './golden-support.ts';

/** A pod that asks for the mesh in a way that cannot work is refused with every problem named. */
function refusal(pod: unknown): PodRefusedError {
  try {
    injectPod(pod as Pod, 'shop', DEFAULT_INJECTION_SETTINGS);
  } catch (err) {
    expect(err).toBeInstanceOf(PodRefusedError);
    return err as PodRefusedError;
  }
  throw new Error('expected a refusal');
}

function withAnnotations(annotations: Record<string, string>): Pod {
  const pod = loadPod('plain');
  pod.metadata = { ...pod.metadata, annotations };
  return pod;
}

describe('refused pods', () => {
  it.each([
    ['meshlet.io/inject', 'yes', 'must be one of enabled, disabled'],
    ['meshlet.io/native-sidecar', 'maybe', 'must be one of true, false'],
    ['meshlet.io/skip-inbound-ports', '80,http', '"http" must be a port number (1-65535)'],
    ['meshlet.io/skip-outbound-ports', '70000', '"70000" must be a port number (1-65535)'],
    ['meshlet.io/skip-outbound-cidrs', '10.0.0.0/33', '"10.0.0.0/33" is not an IPv4 CIDR'],
    ['meshlet.io/skip-outbound-cidrs', '300.1.1.1/8', '"300.1.1.1/8" is not an IPv4 CIDR'],
    ['meshlet.io/default-policy', 'allow-all', 'must be one of deny, all-authenticated, audit'],
    ['meshlet.io/proxy-cpu-request', '100 m', 'is not a Kubernetes quantity'],
    ['meshlet.io/proxy-memory-limit', '1GB', 'is not a Kubernetes quantity'],
    ['meshlet.io/proxy-memory-limit', '64Mi', 'is below 96Mi, the least the sidecar runs in'],
    ['meshlet.io/proxy-memory-limit', '500m', 'is not a memory quantity in bytes'],
    ['meshlet.io/log-level', 'verbose', 'must be one of fatal, error, warn, info, debug, trace'],
    ['meshlet.io/identity-source', 'spire', 'must be one of meshlet-ca, workload-api, files'],
    ['meshlet.io/policy-configmap', 'Orders_Policy', 'is not a ConfigMap name'],
  ])('%s=%s -> INJECTOR_ANNOTATION_INVALID', (key, value, message) => {
    const err = refusal(withAnnotations({ [key]: value }));
    expect(err.code).toBe('INJECTOR_ANNOTATION_INVALID');
    expect(err.message).toContain(`annotation ${key}=${JSON.stringify(value)}`);
    expect(err.message).toContain(message);
  });

  it('reports every bad annotation at once', () => {
    const err = refusal(withAnnotations({ 'meshlet.io/log-level': 'loud', 'meshlet.io/default-policy': 'open', 'meshlet.io/opaque-ports': 'x' }));
    expect(err.problems).toHaveLength(3);
  });

  it('refuses permissive / opaque ports that are not meshed containerPorts', () => {
    const err = refusal(withAnnotations({ 'meshlet.io/permissive-ports': '9999', 'meshlet.io/opaque-ports': '8080,5432' }));
    expect(err.code).toBe('INJECTOR_ANNOTATION_INVALID');
    expect(err.problems).toEqual([
      'annotation meshlet.io/permissive-ports: port 9999 is not a meshed containerPort of the pod (declared TCP ports, minus meshlet.io/skip-inbound-ports)',
      'annotation meshlet.io/opaque-ports: port 5432 is not a meshed containerPort of the pod (declared TCP ports, minus meshlet.io/skip-inbound-ports)',
    ]);
  });

  it('refuses a permissive port that is also skipped (it would never reach the sidecar)', () => {
    const err = refusal(withAnnotations({ 'meshlet.io/permissive-ports': '8080', 'meshlet.io/skip-inbound-ports': '8080' }));
    expect(err.code).toBe('INJECTOR_ANNOTATION_INVALID');
  });

  it.each([15001, 15006, 15020, 15100])('refuses an app port the sidecar binds (%i)', (port) => {
    const pod = loadPod('plain');
    pod.spec.containers[0]!.ports = [{ containerPort: port }];
    const err = refusal(pod);
    expect(err.code).toBe('INJECTOR_PORT_CONFLICT');
    expect(err.message).toContain(`container app declares port ${port}, which the meshlet sidecar binds`);
  });

  it('refuses an httpGet probe on a port name the container does not declare', () => {
    const pod = loadPod('plain');
    pod.spec.containers[0]!.readinessProbe = { httpGet: { path: '/ready', port: 'health' } };
    const err = refusal(pod);
    expect(err.code).toBe('INJECTOR_PROBE_PORT_UNKNOWN');
    expect(err.message).toBe('container app readinessProbe.httpGet.port "health" names no port of the container');
  });

  it('refuses a pod that already uses a name the injector adds', () => {
    const pod = loadPod('plain');
    pod.spec.volumes = [{ name: 'meshlet-keys', emptyDir: {} }];
    pod.spec.initContainers = [{ name: 'meshlet-init', image: 'x' }];
    const err = refusal(pod);
    expect(err.code).toBe('INJECTOR_NAME_CONFLICT');
    expect(err.problems).toEqual(['the pod already has a container named meshlet-init', 'the pod already has a volume named meshlet-keys']);
  });

  it.each([[null], [{}], [{ spec: {} }], [{ spec: { containers: 'app' } }]])('refuses an object that is not a pod: %j', (obj) => {
    expect(refusal(obj).code).toBe('INJECTOR_POD_MALFORMED');
  });

  it('an opt-out is honoured even when other annotations are valid and present', () => {
    const pod = withAnnotations({ 'meshlet.io/inject': 'disabled', 'meshlet.io/log-level': 'debug' });
    expect(injectPod(pod, 'shop', DEFAULT_INJECTION_SETTINGS)).toMatchObject({ outcome: 'skipped', reason: 'opted-out' });
  });

  it('a settings-level switch to regular containers applies unless the pod says otherwise', () => {
    const settings = { ...DEFAULT_INJECTION_SETTINGS, nativeSidecar: false };
    const legacy = injectPod(loadPod('plain'), 'shop', settings);
    expect(legacy.outcome === 'injected' && legacy.patch.some((op) => op.path === '/spec/containers/0')).toBe(true);
    const native = injectPod(withAnnotations({ 'meshlet.io/native-sidecar': 'true' }), 'shop', settings);
    expect(native.outcome === 'injected' && native.patch.some((op) => op.path === '/spec/containers/0')).toBe(false);
  });
});
