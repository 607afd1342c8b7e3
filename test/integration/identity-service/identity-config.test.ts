// `meshlet identity`'s environment contract: defaults, derived values, and cross-field rules.
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/common/config/env.ts';
import { readIdentityConfig } from '../../../src/control-plane/identity-service/config.ts';

function problemsOf(env: Record<string, string>): string[] {
  try {
    readIdentityConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.map((p) => p.variable);
    throw err;
  }
  return [];
}

describe('identity service configuration', () => {
  it('has working defaults for everything, frozen', () => {
    const c = readIdentityConfig({});
    expect(c).toMatchObject({
      trustDomain: 'cluster.local',
      listen: { host: '0.0.0.0', port: 8443 },
      adminListen: { host: '0.0.0.0', port: 9090 },
      servingSpiffeId: 'spiffe://cluster.local/ns/meshlet-system/sa/meshlet-identity',
      audience: 'meshlet-identity',
      svidTtlMs: 24 * 3600 * 1000,
      authMode: 'token-review',
      rateBurst: 10,
      rateRefillMs: 60_000,
    });
    expect(c.tlsCertFile).toBeUndefined();
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.listen)).toBe(true);
  });

  it('derives the serving SPIFFE ID from the trust domain, and "off" disables the admin port', () => {
    const c = readIdentityConfig({ MESHLET_TRUST_DOMAIN: 'prod.example', MESHLET_IDENTITY_ADMIN_LISTEN: 'off', MESHLET_IDENTITY_LISTEN: '[::]:9443' });
    expect(c.servingSpiffeId).toBe('spiffe://prod.example/ns/meshlet-system/sa/meshlet-identity');
    expect(c.adminListen).toBeUndefined();
    expect(c.listen).toEqual({ host: '::', port: 9443 });
  });

  it('wants the TLS certificate and key together', () => {
    expect(problemsOf({ MESHLET_IDENTITY_TLS_CERT: '/tls/tls.crt' })).toEqual(['MESHLET_IDENTITY_TLS_KEY']);
    expect(problemsOf({ MESHLET_IDENTITY_TLS_KEY: '/tls/tls.key' })).toEqual(['MESHLET_IDENTITY_TLS_CERT']);
    expect(problemsOf({ MESHLET_IDENTITY_TLS_CERT: '/tls/tls.crt', MESHLET_IDENTITY_TLS_KEY: '/tls/tls.key' })).toEqual([]);
  });

  it('refuses a serving SPIFFE ID outside the trust domain, plaintext URLs and relative paths — all at once', () => {
    expect(
      problemsOf({
        MESHLET_IDENTITY_SPIFFE_ID: 'spiffe://other.example/ns/meshlet-system/sa/meshlet-identity',
        MESHLET_JWKS_URL: 'http://kubernetes.default.svc/openid/v1/jwks',
        MESHLET_CA_DIR: 'ca',
        MESHLET_IDENTITY_RATE_BURST: '0',
        MESHLET_IDENTITY_RATE_REFILL: 'soon',
      }).sort(),
    ).toEqual(['MESHLET_CA_DIR', 'MESHLET_IDENTITY_RATE_BURST', 'MESHLET_IDENTITY_RATE_REFILL', 'MESHLET_IDENTITY_SPIFFE_ID', 'MESHLET_JWKS_URL']);
  });
});
