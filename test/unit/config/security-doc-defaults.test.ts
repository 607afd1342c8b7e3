// docs/security.md's "Limits and timeouts" table is a contract too: every default it states for
// a sidecar variable must be the one the sidecar applies (the same value README's reference
// shows, possibly spelled with a unit: 16384 bytes, 1m = 60s).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { durationField } from '../../../src/common/config/env.ts';
import { SIDECAR_ENV } from '../../../src/data-plane/sidecar/sidecar-env.ts';

const doc = readFileSync(new URL('../../../docs/security.md', import.meta.url), 'utf8');
const table = doc.slice(doc.indexOf('## Limits and timeouts'), doc.indexOf('Policy documents (fixed'));
const byName = new Map(Object.values(SIDECAR_ENV).map((v) => [v.name, v as { name: string; default?: string; parse: (raw: string) => unknown }]));

/** Rows whose variables map one to one onto the defaults column (`a / b` with `X / Y`). */
const rows = table
  .split('\n')
  .filter((l) => l.startsWith('| ') && /`MESHLET_[A-Z_]+`/.test(l))
  .map((l) => l.split('|').map((c) => c.trim()))
  .map(([, what, defaults, variables]) => ({ what: what!, defaults: defaults!.split(' / '), variables: [...variables!.matchAll(/`(MESHLET_[A-Z_]+)`/g)].map((m) => m[1]!) }))
  .filter((r) => r.defaults.length === r.variables.length && r.defaults.every((d) => /^\d+[a-z]*( bytes)?$/.test(d)));

const canonical = (v: { parse: (raw: string) => unknown }, raw: string) => (/^\d+[smh]$/.test(raw) ? durationField(raw) : v.parse(raw.replace(/ bytes$/, '')));

describe('docs/security.md limits table', () => {
  it('states defaults for the sidecar variables it names', () => {
    expect(rows.length).toBeGreaterThanOrEqual(10);
  });
  for (const row of rows) {
    it(`${row.what}: ${row.defaults.join(' / ')}`, () => {
      row.variables.forEach((name, i) => {
        const v = byName.get(name);
        expect(v, `${name} is not a sidecar variable`).toBeDefined();
        expect(canonical(v!, row.defaults[i]!)).toEqual(v!.parse(v!.default!));
      });
    });
  }
});
