import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { SIDECAR_ENV } from '../../../src/data-plane/sidecar/sidecar-env.ts';
import type { EnvVar } from '../../../src/common/config/env.ts';

const variables: EnvVar<unknown>[] = Object.values(SIDECAR_ENV);

// The README's configuration table is the operator's reference: it must name every variable
// the sidecar reads, with the default the code really applies.
describe('README sidecar configuration reference', () => {
  const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
  const rows = new Map<string, string>();
  for (const line of readme.split('\n')) {
    const m = /^\| `([A-Z_]+)` \|([^|]*)\|/.exec(line);
    if (m) rows.set(m[1]!, m[2]!.trim());
  }

  for (const v of variables) {
    it(`documents ${v.name} with its default`, () => {
      expect(rows.has(v.name), `${v.name} missing from README`).toBe(true);
      const documented = rows.get(v.name)!;
      if (v.default === undefined) expect(documented).toBe('(required)');
      else if (v.default === '') expect(['', 'own']).toContain(documented);
      else expect(documented).toBe('`' + v.default + '`');
    });
  }

  it('documents no variable the code does not read', () => {
    const known = new Set(variables.map((v) => v.name));
    for (const name of rows.keys()) expect(known.has(name), `${name} is in README but not in SIDECAR_ENV`).toBe(true);
  });
});
