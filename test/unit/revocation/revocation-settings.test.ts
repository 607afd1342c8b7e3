import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/common/config/env.ts';
import { readIdentityConfig } from '../../../src/control-plane/identity-service/config.ts';
import { readSidecarConfig } from '../../../src/data-plane/sidecar/sidecar-env.ts';
import { revocationConfigMapRef } from '../../../src/control-plane/identity-service/revocation-configmap.ts';

/** MESHLET_REVOCATION_LIST and MESHLET_IDENTITY_REVOCATION_LIST as the processes read them (docs/revocation.md). */
const sidecar = { MESHLET_NAMESPACE: 'shop', MESHLET_SERVICE_ACCOUNT: 'orders' };

function problems(read: () => unknown): string[] {
  try {
    read();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems.map((p) => `${p.variable}: ${p.message}`);
  }
  return [];
}

describe('MESHLET_REVOCATION_LIST (sidecar)', () => {
  it('is off by default, takes an absolute path, or meshlet-ca with the meshlet-ca identity source', () => {
    expect(readSidecarConfig(sidecar).revocationList).toBeUndefined();
    expect(readSidecarConfig({ ...sidecar, MESHLET_REVOCATION_LIST: '/etc/meshlet/revocations/revocations.json' }).revocationList).toBe('/etc/meshlet/revocations/revocations.json');
    expect(readSidecarConfig({ ...sidecar, MESHLET_REVOCATION_LIST: 'meshlet-ca' }).revocationList).toBe('meshlet-ca');
  });

  it('refuses a relative path, and meshlet-ca with another identity source', () => {
    expect(problems(() => readSidecarConfig({ ...sidecar, MESHLET_REVOCATION_LIST: 'revocations.json' }))).toEqual(['MESHLET_REVOCATION_LIST: must be an absolute path']);
    expect(problems(() => readSidecarConfig({ ...sidecar, MESHLET_IDENTITY_SOURCE: 'files', MESHLET_REVOCATION_LIST: 'meshlet-ca' }))).toEqual([
      'MESHLET_REVOCATION_LIST: meshlet-ca needs MESHLET_IDENTITY_SOURCE=meshlet-ca (it is files); mount the list and give its path instead',
    ]);
  });
});

describe('MESHLET_IDENTITY_REVOCATION_LIST (identity service)', () => {
  it('is off by default and takes an absolute path', () => {
    expect(readIdentityConfig({}).revocationList).toBeUndefined();
    expect(readIdentityConfig({ MESHLET_IDENTITY_REVOCATION_LIST: '/etc/meshlet/revocations/revocations.json' }).revocationList).toBe('/etc/meshlet/revocations/revocations.json');
    expect(problems(() => readIdentityConfig({ MESHLET_IDENTITY_REVOCATION_LIST: 'x.json' }))).toEqual(['MESHLET_IDENTITY_REVOCATION_LIST: must be an absolute path']);
  });

  it('takes configmap:NAME (its own namespace) and configmap:NAMESPACE/NAME, and refuses anything else of that form', () => {
    expect(readIdentityConfig({ MESHLET_IDENTITY_REVOCATION_LIST: 'configmap:meshlet-revocations' }).revocationList).toBe('configmap:meshlet-revocations');
    expect(revocationConfigMapRef('configmap:meshlet-revocations')).toEqual({ namespace: null, name: 'meshlet-revocations' });
    expect(revocationConfigMapRef('configmap:meshlet-system/meshlet-revocations')).toEqual({ namespace: 'meshlet-system', name: 'meshlet-revocations' });
    expect(revocationConfigMapRef('/etc/x.json')).toBeNull();
    for (const bad of ['configmap:', 'configmap:Upper', 'configmap:a/b/c', 'configmap:/name', 'configmap:ns/', 'configmap:-x', `configmap:${'n'.repeat(64)}/x`]) {
      expect(problems(() => readIdentityConfig({ MESHLET_IDENTITY_REVOCATION_LIST: bad })), bad).toEqual(['MESHLET_IDENTITY_REVOCATION_LIST: must be configmap:NAME or configmap:NAMESPACE/NAME (a ConfigMap name and a namespace as Kubernetes spells them)']);
    }
  });
});
