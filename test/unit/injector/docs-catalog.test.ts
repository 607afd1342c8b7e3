import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ANNOTATIONS, INJECTION_ENV, POD_REFUSAL_CODES, WEAKENING_ANNOTATIONS } from '../../../src/control-plane/injector/patch/index.ts';
import { ADMISSION_RESULTS } from '../../../src/control-plane/injector/metrics.ts';

/** docs/injector.md is the catalog users read: every annotation, refusal code, setting and metric result must be in it. */
const doc = readFileSync(join(dirname(fileURLToPath(import.meta.url)), '../../../docs/injector.md'), 'utf8');

describe('docs/injector.md stays in sync with the code', () => {
  it.each(Object.values(ANNOTATIONS))('documents annotation %s', (a) => expect(doc).toContain(`\`${a}\``));
  it.each([...POD_REFUSAL_CODES, 'INJECTOR_INTERNAL'])('documents refusal code %s', (c) => expect(doc).toContain(`\`${c}\``));
  it.each(Object.values(INJECTION_ENV).map((v) => v.name))('documents setting %s', (v) => expect(doc).toContain(`\`${v}\``));
  it.each(ADMISSION_RESULTS)('documents metric result %s', (r) => expect(doc).toContain(`\`${r}\``));

  it('the table of annotations that weaken enforcement lists exactly WEAKENING_ANNOTATIONS, in order', () => {
    const section = doc.slice(doc.indexOf('## Annotations that weaken enforcement'));
    const table = section.slice(section.indexOf('| Annotation | What it weakens |'), section.indexOf('\n\n', section.indexOf('| Annotation | What it weakens |')));
    const rows = [...table.matchAll(/^\| `(meshlet\.io\/[a-z-]+)` \|/gm)].map((m) => m[1]);
    expect(rows).toEqual([...WEAKENING_ANNOTATIONS]);
  });
});
