import { describe, expect, it } from 'vitest';
import {
  isSpiffeId,
  MAX_SPIFFE_ID_BYTES,
  MAX_TRUST_DOMAIN_BYTES,
  parseSpiffeId,
  parseWorkloadSpiffeId,
  SpiffeIdError,
  workloadSpiffeId,
} from '../../../src/common/identity/spiffe-id.ts';

function codeOf(input: string): string {
  try {
    parseSpiffeId(input);
  } catch (err) {
    expect(err).toBeInstanceOf(SpiffeIdError);
    return (err as SpiffeIdError).code;
  }
  return 'VALID';
}

describe('parseSpiffeId accepts what the SPIFFE-ID standard allows', () => {
  const valid: Array<[input: string, trustDomain: string, path: string]> = [
    ['spiffe://example.org', 'example.org', ''],
    ['spiffe://example.org/ns/default/sa/web', 'example.org', '/ns/default/sa/web'],
    ['spiffe://cluster.local/ns/kube-system/sa/coredns', 'cluster.local', '/ns/kube-system/sa/coredns'],
    ['spiffe://a_b-c.1/Path.With-Mixed_Case09', 'a_b-c.1', '/Path.With-Mixed_Case09'],
    ['spiffe://td/...', 'td', '/...'], // three dots is an ordinary segment, only "." and ".." are special
    ['spiffe://td/.hidden', 'td', '/.hidden'],
    [`spiffe://${'a'.repeat(MAX_TRUST_DOMAIN_BYTES)}/x`, 'a'.repeat(MAX_TRUST_DOMAIN_BYTES), '/x'],
  ];
  for (const [input, trustDomain, path] of valid) {
    it(input.length > 60 ? `${input.slice(0, 60)}…` : input, () => {
      const id = parseSpiffeId(input);
      expect(id).toEqual({ trustDomain, path, id: input });
      expect(Object.isFrozen(id)).toBe(true);
      expect(isSpiffeId(input)).toBe(true);
    });
  }

  it(`accepts an ID of exactly ${MAX_SPIFFE_ID_BYTES} bytes`, () => {
    const prefix = 'spiffe://td/';
    const input = prefix + 'x'.repeat(MAX_SPIFFE_ID_BYTES - prefix.length);
    expect(Buffer.byteLength(input)).toBe(MAX_SPIFFE_ID_BYTES);
    expect(parseSpiffeId(input).path.length).toBe(MAX_SPIFFE_ID_BYTES - prefix.length + 1);
  });
});

describe('parseSpiffeId rejects each invalid form with its own code', () => {
  const prefix = 'spiffe://td/';
  const invalid: Array<[what: string, input: string, code: string]> = [
    ['empty', '', 'SPIFFE_ID_EMPTY'],
    ['over 2048 bytes', prefix + 'x'.repeat(MAX_SPIFFE_ID_BYTES - prefix.length + 1), 'SPIFFE_ID_TOO_LONG'],
    ['over 2048 bytes by multi-byte chars', prefix + 'é'.repeat(1100), 'SPIFFE_ID_TOO_LONG'],
    ['uppercase scheme', 'SPIFFE://example.org/x', 'SPIFFE_ID_WRONG_SCHEME'],
    ['mixed-case scheme', 'Spiffe://example.org/x', 'SPIFFE_ID_WRONG_SCHEME'],
    ['another scheme', 'https://example.org/x', 'SPIFFE_ID_WRONG_SCHEME'],
    ['missing slashes', 'spiffe:example.org/x', 'SPIFFE_ID_WRONG_SCHEME'],
    ['no scheme', 'example.org/x', 'SPIFFE_ID_WRONG_SCHEME'],
    ['missing trust domain', 'spiffe:///x', 'SPIFFE_ID_MISSING_TRUST_DOMAIN'],
    ['only the scheme', 'spiffe://', 'SPIFFE_ID_MISSING_TRUST_DOMAIN'],
    ['uppercase trust domain', 'spiffe://Example.org/x', 'SPIFFE_ID_BAD_TRUST_DOMAIN_CHAR'],
    ['port', 'spiffe://example.org:8080/x', 'SPIFFE_ID_BAD_TRUST_DOMAIN_CHAR'],
    ['userinfo', 'spiffe://user@example.org/x', 'SPIFFE_ID_BAD_TRUST_DOMAIN_CHAR'],
    ['percent-encoded trust domain', 'spiffe://ex%41mple.org/x', 'SPIFFE_ID_BAD_TRUST_DOMAIN_CHAR'],
    ['query on the trust domain', 'spiffe://example.org?x=1', 'SPIFFE_ID_BAD_TRUST_DOMAIN_CHAR'],
    ['fragment on the trust domain', 'spiffe://example.org#f', 'SPIFFE_ID_BAD_TRUST_DOMAIN_CHAR'],
    ['trust domain over 255 bytes', `spiffe://${'a'.repeat(MAX_TRUST_DOMAIN_BYTES + 1)}/x`, 'SPIFFE_ID_TRUST_DOMAIN_TOO_LONG'],
    ['query in the path', 'spiffe://example.org/x?y=1', 'SPIFFE_ID_BAD_PATH_CHAR'],
    ['fragment in the path', 'spiffe://example.org/x#frag', 'SPIFFE_ID_BAD_PATH_CHAR'],
    ['percent-encoding in the path', 'spiffe://example.org/a%20b', 'SPIFFE_ID_BAD_PATH_CHAR'],
    ['a space in the path', 'spiffe://example.org/a b', 'SPIFFE_ID_BAD_PATH_CHAR'],
    ['non-ASCII in the path', 'spiffe://example.org/caf\u00e9', 'SPIFFE_ID_BAD_PATH_CHAR'],
    ['a "." segment', 'spiffe://example.org/a/./b', 'SPIFFE_ID_DOT_SEGMENT'],
    ['a ".." segment', 'spiffe://example.org/a/../b', 'SPIFFE_ID_DOT_SEGMENT'],
    ['a trailing "." segment', 'spiffe://example.org/a/.', 'SPIFFE_ID_DOT_SEGMENT'],
    ['an empty segment', 'spiffe://example.org/a//b', 'SPIFFE_ID_EMPTY_SEGMENT'],
    ['a trailing slash', 'spiffe://example.org/a/', 'SPIFFE_ID_TRAILING_SLASH'],
    ['a bare trailing slash', 'spiffe://example.org/', 'SPIFFE_ID_TRAILING_SLASH'],
  ];
  for (const [what, input, code] of invalid) {
    it(`${what} -> ${code}`, () => {
      expect(codeOf(input)).toBe(code);
      expect(isSpiffeId(input)).toBe(false);
    });
  }

  it('names the offending character and truncates long inputs in the message', () => {
    expect(() => parseSpiffeId('spiffe://example.org:443/x')).toThrow(/":".*a port is not allowed/);
    expect(() => parseSpiffeId('spiffe://example.org/a%2F')).toThrow(/percent-encoding is not allowed/);
    try {
      parseSpiffeId(prefix + 'x'.repeat(5000));
    } catch (err) {
      expect((err as Error).message.length).toBeLessThan(200);
    }
  });
});

describe('workload IDs', () => {
  it('round-trips spiffe://<td>/ns/<ns>/sa/<sa>', () => {
    const id = workloadSpiffeId('cluster.local', 'shop', 'orders');
    expect(id.id).toBe('spiffe://cluster.local/ns/shop/sa/orders');
    expect(parseWorkloadSpiffeId(id)).toEqual({ trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'orders' });
    expect(parseWorkloadSpiffeId(id.id)).toEqual({ trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'orders' });
  });

  it('rejects other shapes with SPIFFE_ID_NOT_WORKLOAD', () => {
    for (const input of ['spiffe://td', 'spiffe://td/ns/a', 'spiffe://td/ns/a/sa/b/extra', 'spiffe://td/sa/b/ns/a', 'spiffe://td/x/a/sa/b']) {
      expect(() => parseWorkloadSpiffeId(input)).toThrow(expect.objectContaining({ code: 'SPIFFE_ID_NOT_WORKLOAD' }));
    }
  });

  it('refuses a namespace or service account that would not make a valid ID', () => {
    expect(() => workloadSpiffeId('cluster.local', 'a b', 'c')).toThrow(expect.objectContaining({ code: 'SPIFFE_ID_BAD_PATH_CHAR' }));
    expect(() => workloadSpiffeId('cluster.local', 'a', '')).toThrow(expect.objectContaining({ code: 'SPIFFE_ID_TRAILING_SLASH' }));
    expect(() => workloadSpiffeId('Cluster.local', 'a', 'b')).toThrow(expect.objectContaining({ code: 'SPIFFE_ID_BAD_TRUST_DOMAIN_CHAR' }));
    // A slash would make a valid ID of the wrong shape: spiffe://td/ns/a/b/sa/c.
    expect(() => workloadSpiffeId('cluster.local', 'a/b', 'c')).toThrow(expect.objectContaining({ code: 'SPIFFE_ID_NOT_WORKLOAD' }));
  });
});
