import { describe, expect, it } from 'vitest';
import { RevocationListError } from '../../../src/data-plane/identity/revocation/errors.ts';
import { checkRevocableId, formatRevocationList, isRfc3339, MAX_REVOCATION_LIST_BYTES, MAX_REVOKED_ENTRIES, PARSE_SLICE_ENTRIES, parseRevocationList, parseRevocationListInSlices, RevocationSet } from '../../../src/data-plane/identity/revocation/revocation-list.ts';

/** The revocation list document (docs/revocation.md "The list"): parsed strictly, every refusal precise. */
const FRONTEND = 'spiffe://cluster.local/ns/web/sa/frontend';
const ORDERS = 'spiffe://cluster.local/ns/shop/sa/orders';

function doc(revoked: unknown[], extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ apiVersion: 'meshlet.io/v1alpha1', kind: 'RevocationList', revoked, ...extra });
}

function refusal(text: string | Buffer): RevocationListError {
  try {
    parseRevocationList(text);
  } catch (err) {
    expect(err).toBeInstanceOf(RevocationListError);
    return err as RevocationListError;
  }
  throw new Error('the list was accepted');
}

describe('parseRevocationList', () => {
  it('reads a valid list into a set with O(1) lookup by SPIFFE ID, keeping reasons and dates', () => {
    const set = parseRevocationList(doc([{ spiffeId: FRONTEND, revokedAt: '2026-12-04T07:00:00Z', reason: 'key leaked' }, { spiffeId: ORDERS, revokedAt: '2026-12-04T08:00:00.5+01:00' }]));
    expect(set.size).toBe(2);
    expect(set.has(FRONTEND)).toBe(true);
    expect(set.has(ORDERS)).toBe(true);
    expect(set.has('spiffe://cluster.local/ns/web/sa/frontend2')).toBe(false);
    expect(set.entries[0]).toEqual({ spiffeId: FRONTEND, revokedAt: '2026-12-04T07:00:00Z', reason: 'key leaked' });
    expect(set.entries[1]).toEqual({ spiffeId: ORDERS, revokedAt: '2026-12-04T08:00:00.5+01:00' });
    expect(set.digest).toMatch(/^[0-9a-f]{64}$/);
  });

  it('accepts the empty list: nobody is revoked', () => {
    const set = parseRevocationList(doc([]));
    expect(set.size).toBe(0);
    expect(set.has(FRONTEND)).toBe(false);
  });

  const cases: [string, string, string][] = [
    ['not JSON', '{"apiVersion":', 'not JSON:'],
    ['an array instead of an object', '[]', 'the document: must be a JSON object'],
    ['another apiVersion', doc([], { apiVersion: 'meshlet.io/v1' }), 'apiVersion: must be "meshlet.io/v1alpha1", got "meshlet.io/v1"'],
    ['another kind', doc([], { kind: 'ConfigMap' }), 'kind: must be "RevocationList", got "ConfigMap"'],
    ['an unknown top-level field', doc([], { revokedIds: [] }), 'revokedIds: unknown field (allowed: apiVersion, kind, revoked)'],
    ['no revoked array', JSON.stringify({ apiVersion: 'meshlet.io/v1alpha1', kind: 'RevocationList' }), 'revoked: must be an array (empty: nobody is revoked)'],
    ['an entry that is a bare string', doc([FRONTEND]), 'revoked[0]: must be an object'],
    ['an unknown entry field', doc([{ spiffeId: FRONTEND, revokedAt: '2026-12-04T07:00:00Z', serial: '01' }]), 'revoked[0].serial: unknown field (allowed: spiffeId, revokedAt, reason)'],
    ['an uppercase trust domain', doc([{ spiffeId: 'spiffe://Cluster.local/ns/a/sa/b', revokedAt: '2026-12-04T07:00:00Z' }]), 'revoked[0].spiffeId: invalid SPIFFE ID "spiffe://Cluster.local/ns/a/sa/b": trust domain has the character "C" (must be lowercase)'],
    ['a trust domain without a workload path', doc([{ spiffeId: 'spiffe://cluster.local', revokedAt: '2026-12-04T07:00:00Z' }]), 'revoked[0].spiffeId: invalid SPIFFE ID "spiffe://cluster.local" for revocation: it names a trust domain, not a workload'],
    ['a duplicate ID', doc([{ spiffeId: FRONTEND, revokedAt: '2026-12-04T07:00:00Z' }, { spiffeId: ORDERS, revokedAt: '2026-12-04T07:00:00Z' }, { spiffeId: FRONTEND, revokedAt: '2026-12-05T07:00:00Z' }]), `revoked[2].spiffeId: ${FRONTEND} is listed twice (first at revoked[0])`],
    ['no revokedAt', doc([{ spiffeId: FRONTEND }]), 'revoked[0].revokedAt: must be an RFC 3339 date-time such as "2026-12-04T07:00:00Z", got null'],
    ['a date without a time zone', doc([{ spiffeId: FRONTEND, revokedAt: '2026-12-04T07:00:00' }]), 'revoked[0].revokedAt: must be an RFC 3339 date-time'],
    ['February 30th', doc([{ spiffeId: FRONTEND, revokedAt: '2026-02-30T07:00:00Z' }]), 'revoked[0].revokedAt: must be an RFC 3339 date-time'],
    ['a reason that is not a string', doc([{ spiffeId: FRONTEND, revokedAt: '2026-12-04T07:00:00Z', reason: 42 }]), 'revoked[0].reason: must be a string of at most 1024 characters'],
    ['a reason over 1024 characters', doc([{ spiffeId: FRONTEND, revokedAt: '2026-12-04T07:00:00Z', reason: 'x'.repeat(1025) }]), 'revoked[0].reason: must be a string of at most 1024 characters'],
  ];
  for (const [name, text, message] of cases) {
    it(`refuses ${name} as REVOCATION_LIST_INVALID, saying where`, () => {
      const err = refusal(text);
      expect(err.code).toBe('REVOCATION_LIST_INVALID');
      expect(err.message).toContain(message);
    });
  }

  it(`refuses more than ${MAX_REVOCATION_LIST_BYTES} bytes, and more than ${MAX_REVOKED_ENTRIES} entries, as REVOCATION_LIST_TOO_LARGE`, () => {
    const big = refusal(Buffer.alloc(MAX_REVOCATION_LIST_BYTES + 1, 0x20));
    expect(big.code).toBe('REVOCATION_LIST_TOO_LARGE');
    expect(big.message).toBe(`the list is ${MAX_REVOCATION_LIST_BYTES + 1} bytes; at most ${MAX_REVOCATION_LIST_BYTES} are accepted`);
    const many = Array.from({ length: MAX_REVOKED_ENTRIES + 1 }, (_, i) => ({ spiffeId: `spiffe://c/s/${i}`, revokedAt: '2026-12-04T07:00:00Z' }));
    const text = doc(many);
    expect(text.length).toBeLessThan(MAX_REVOCATION_LIST_BYTES);
    const tooMany = refusal(text);
    expect(tooMany.code).toBe('REVOCATION_LIST_TOO_LARGE');
    expect(tooMany.message).toBe(`revoked: ${MAX_REVOKED_ENTRIES + 1} entries; at most ${MAX_REVOKED_ENTRIES} are accepted`);
  });

  it('formatRevocationList writes what parseRevocationList reads back, entry for entry', () => {
    const entries = [{ spiffeId: FRONTEND, revokedAt: '2026-12-04T07:00:00Z', reason: 'key leaked' }, { spiffeId: ORDERS, revokedAt: '2026-12-04T07:01:00Z' }];
    const text = formatRevocationList(entries);
    expect(text.endsWith('\n')).toBe(true);
    expect(parseRevocationList(text).entries).toEqual(entries);
  });
});

describe('parseRevocationListInSlices (what a running process uses)', () => {
  const many = (n: number) => Array.from({ length: n }, (_, i) => ({ spiffeId: `spiffe://cluster.local/ns/n${i}/sa/s`, revokedAt: '2026-12-04T07:00:00Z' }));

  it('gives the same list as the one-piece parser, letting the event loop run between slices', async () => {
    const text = doc(many(PARSE_SLICE_ENTRIES * 4 + 1));
    let ranDuringParse = false;
    setImmediate(() => (ranDuringParse = true));
    const set = await parseRevocationListInSlices(text);
    expect(set.entries).toEqual(parseRevocationList(text).entries);
    expect(set.digest).toBe(parseRevocationList(text).digest);
    // An immediate queued before the parse ran before it finished: the parse yielded.
    expect(ranDuringParse).toBe(true);
  });

  it('refuses what the one-piece parser refuses, with the same message, also past the first slice', async () => {
    const entries: unknown[] = many(PARSE_SLICE_ENTRIES * 2);
    entries.push({ spiffeId: 'spiffe://cluster.local/ns/x/sa/', revokedAt: '2026-12-04T07:00:00Z' });
    const text = doc(entries);
    const err = await parseRevocationListInSlices(text).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(RevocationListError);
    expect((err as Error).message).toBe(refusal(text).message);
    expect((err as Error).message).toContain(`revoked[${PARSE_SLICE_ENTRIES * 2}].spiffeId`);
  });
});

describe('RevocationSet', () => {
  it('says which IDs a new list adds and which it re-admits', () => {
    const before = parseRevocationList(doc([{ spiffeId: FRONTEND, revokedAt: '2026-12-04T07:00:00Z' }]));
    const after = parseRevocationList(doc([{ spiffeId: ORDERS, revokedAt: '2026-12-04T07:00:00Z' }]));
    expect(after.addedSince(before)).toEqual([ORDERS]);
    expect(after.removedSince(before)).toEqual([FRONTEND]);
    expect(RevocationSet.EMPTY.size).toBe(0);
    expect(before.addedSince(RevocationSet.EMPTY)).toEqual([FRONTEND]);
  });
});

describe('checkRevocableId and isRfc3339', () => {
  it('keeps a valid workload ID, refuses others with "invalid SPIFFE ID"', () => {
    expect(checkRevocableId(FRONTEND)).toBe(FRONTEND);
    for (const bad of ['', 'http://cluster.local/ns/a/sa/b', 'spiffe://cluster.local/ns/a/', 'spiffe://cluster.local/ns/%2e/sa/b', 'spiffe://cluster.local']) {
      expect(() => checkRevocableId(bad)).toThrow(/invalid SPIFFE ID/);
    }
  });

  it('accepts RFC 3339 date-times and nothing looser', () => {
    for (const ok of ['2026-12-04T07:00:00Z', '2026-12-04t07:00:00z', '2026-12-04T07:00:00.123456-05:30', '2028-02-29T00:00:00Z']) expect([ok, isRfc3339(ok)]).toEqual([ok, true]);
    for (const bad of ['2026-12-04', '2026-12-04 07:00:00Z', '2026-13-01T00:00:00Z', '2026-02-29T00:00:00Z', '2026-12-04T24:00:00Z', 'yesterday']) expect([bad, isRfc3339(bad)]).toEqual([bad, false]);
  });
});
