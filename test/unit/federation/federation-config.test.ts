// MESHLET_FEDERATION_BUNDLES as the sidecar reads it: off by default, an absolute directory for
// the files and meshlet-ca sources, refused with workload-api (SPIRE federates by itself).
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/common/config/env.ts';
import { readSidecarConfig, SIDECAR_ENV } from '../../../src/data-plane/sidecar/sidecar-env.ts';

const BASE = { MESHLET_NAMESPACE: 'shop', MESHLET_SERVICE_ACCOUNT: 'orders' };

function problems(env: Record<string, string>): string[] {
  try {
    readSidecarConfig({ ...BASE, ...env });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems.map((p) => `${p.variable}: ${p.message}`);
  }
  return [];
}

describe('MESHLET_FEDERATION_BUNDLES', () => {
  it('is off by default (empty)', () => {
    expect(SIDECAR_ENV.federationBundles.default).toBe('');
    expect(readSidecarConfig(BASE).federationBundles).toBe('');
  });

  it('takes an absolute directory with the files and meshlet-ca sources', () => {
    for (const source of ['files', 'meshlet-ca']) {
      expect(readSidecarConfig({ ...BASE, MESHLET_IDENTITY_SOURCE: source, MESHLET_FEDERATION_BUNDLES: '/var/run/meshlet/federation' }).federationBundles).toBe('/var/run/meshlet/federation');
    }
  });

  it('refuses a relative path', () => {
    expect(problems({ MESHLET_FEDERATION_BUNDLES: 'federation' })).toEqual(['MESHLET_FEDERATION_BUNDLES: must be an absolute path']);
  });

  it('refuses the workload-api source, saying why', () => {
    expect(problems({ MESHLET_IDENTITY_SOURCE: 'workload-api', MESHLET_FEDERATION_BUNDLES: '/var/run/meshlet/federation' })).toEqual([
      'MESHLET_FEDERATION_BUNDLES: not valid with MESHLET_IDENTITY_SOURCE=workload-api: SPIRE delivers the bundles of federated trust domains itself (federated_bundles); configure federation in SPIRE (federates_with) instead',
    ]);
  });
});
