// The sidecar's discovery settings (src/data-plane/sidecar/sidecar-env.ts): defaults, the TTL
// cap, the CIDRs required when on.
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/common/config/env.ts';
import { readSidecarConfig } from '../../../src/data-plane/sidecar/sidecar-env.ts';

const minimal = { MESHLET_NAMESPACE: 'shop', MESHLET_SERVICE_ACCOUNT: 'orders' };

function problems(env: Record<string, string>): string {
  try {
    readSidecarConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  return '';
}

describe('sidecar discovery configuration', () => {
  it('is off by default, with 10 s TTLs, a 1 s deadline and 4096 keys', () => {
    const c = readSidecarConfig(minimal);
    expect(c).toMatchObject({ discovery: 'off', discoveryTtlMs: 10_000, discoveryUnmeshedTtlMs: 10_000, discoveryTimeoutMs: 1_000, discoveryCacheSize: 4096, clusterDomain: 'cluster.local', podCidrs: [], serviceCidrs: [] });
  });

  it('on needs the pod and service CIDRs', () => {
    const msg = problems({ ...minimal, MESHLET_DISCOVERY: 'on' });
    expect(msg).toContain('MESHLET_POD_CIDRS');
    expect(msg).toContain('MESHLET_SERVICE_CIDRS');
    const c = readSidecarConfig({ ...minimal, MESHLET_DISCOVERY: 'on', MESHLET_POD_CIDRS: '10.244.0.0/16, fd00:10:244::/56', MESHLET_SERVICE_CIDRS: '10.96.0.0/12', MESHLET_CLUSTER_DOMAIN: 'Corp.Example.' });
    expect(c).toMatchObject({ discovery: 'on', podCidrs: ['10.244.0.0/16', 'fd00:10:244::/56'], serviceCidrs: ['10.96.0.0/12'], clusterDomain: 'corp.example' });
  });

  it('TTLs are capped at 30 s (inside the control plane staleness bound) and must be positive', () => {
    expect(readSidecarConfig({ ...minimal, MESHLET_DISCOVERY_TTL: '30s', MESHLET_DISCOVERY_UNMESHED_TTL: '2s' })).toMatchObject({ discoveryTtlMs: 30_000, discoveryUnmeshedTtlMs: 2_000 });
    const msg = problems({ ...minimal, MESHLET_DISCOVERY_TTL: '31s', MESHLET_DISCOVERY_UNMESHED_TTL: '5m' });
    expect(msg).toContain('MESHLET_DISCOVERY_TTL');
    expect(msg).toContain('MESHLET_DISCOVERY_UNMESHED_TTL');
    expect(problems({ ...minimal, MESHLET_DISCOVERY_UNMESHED_TTL: '0s' })).toContain('MESHLET_DISCOVERY_UNMESHED_TTL');
  });

  it('refuses bad CIDRs and values', () => {
    const msg = problems({ ...minimal, MESHLET_DISCOVERY: 'maybe', MESHLET_POD_CIDRS: '10.244.0.0/33', MESHLET_SERVICE_CIDRS: 'services', MESHLET_DISCOVERY_CACHE_SIZE: '0' });
    for (const v of ['MESHLET_DISCOVERY=', 'MESHLET_POD_CIDRS', 'MESHLET_SERVICE_CIDRS', 'MESHLET_DISCOVERY_CACHE_SIZE']) expect(msg).toContain(v);
  });
});
