import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { INJECTOR_ENV } from '../../../src/control-plane/injector/config.ts';
import { INJECTION_ENV } from '../../../src/control-plane/injector/patch/settings.ts';
import type { EnvVar } from '../../../src/common/config/env.ts';

// docs/injector.md is the operator's reference for `meshlet injector`: its "Variable | Default |
// Meaning" tables must name every variable the injector reads, with the default the code
// applies, and no variable it does not read (as the README is for the sidecar and
// docs/identity-service.md for the identity service).
const variables: EnvVar<unknown>[] = [...Object.values(INJECTOR_ENV), ...Object.values(INJECTION_ENV)];

const doc = readFileSync(new URL('../../../docs/injector.md', import.meta.url), 'utf8');
const rows = new Map<string, string>();
let inTable = false;
for (const line of doc.split('\n')) {
  if (line.startsWith('| Variable | Default | Meaning |')) inTable = true;
  else if (!line.startsWith('|')) inTable = false;
  const m = inTable ? /^\| `([A-Z_]+)` \|([^|]*)\|/.exec(line) : null;
  if (m) rows.set(m[1]!, m[2]!.trim());
}

describe('docs/injector.md documents the injector environment', () => {
  for (const v of variables) {
    it(`documents ${v.name} with its default`, () => {
      expect(rows.has(v.name), `${v.name} missing from docs/injector.md's variable tables`).toBe(true);
      // An empty default is an empty cell, as in the README's sidecar table.
      expect(rows.get(v.name)).toBe(v.default === undefined ? '(required)' : v.default === '' ? '' : '`' + v.default + '`');
    });
  }

  it('documents no variable the injector does not read', () => {
    const known = new Set(variables.map((v) => v.name));
    for (const name of rows.keys()) expect(known.has(name), `${name} is in docs/injector.md but not in INJECTOR_ENV or INJECTION_ENV`).toBe(true);
  });
});
