import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * docs/architecture.md, "The tree": the source tree is split by what gets deployed, and imports
 * only point the ways that split allows. The data plane (the sidecar in every pod) must not
 * pull in the control plane, the CLI or development tooling; `common/` depends on nothing
 * else; nothing in the image reaches into `dev/` except the demo command, which loads it on
 * demand. Micro-benchmarks (`*.bench.ts`) are not shipped and may use anything (the CA to
 * make certificates).
 */
const SRC = fileURLToPath(new URL('../../../src/', import.meta.url));
type Layer = 'data-plane' | 'control-plane' | 'cli' | 'common' | 'dev' | 'entry';

const ALLOWED: Record<Layer, readonly Layer[]> = {
  common: ['common'],
  'data-plane': ['data-plane', 'common'],
  'control-plane': ['control-plane', 'data-plane', 'common'],
  cli: ['cli', 'control-plane', 'data-plane', 'common'],
  dev: ['dev', 'cli', 'control-plane', 'data-plane', 'common'],
  entry: ['cli'],
};
/** The one file of the image allowed to name dev/: it loads the demo on demand (main.ts says when it is absent). */
const DEV_LOADER = 'cli/commands/demo.ts';

function layerOf(file: string): Layer {
  const top = relative(SRC, file).split('/')[0]!;
  return (['data-plane', 'control-plane', 'cli', 'common', 'dev'] as const).find((l) => l === top) ?? 'entry';
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

const IMPORT = /(?:^|[^\w.])(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g;

describe('imports follow the deployment split', () => {
  const files = sources(SRC).filter((f) => !f.endsWith('.bench.ts') && !f.endsWith('.test.ts'));

  it('finds the five folders', () => {
    expect(new Set(files.map(layerOf))).toEqual(new Set(['data-plane', 'control-plane', 'cli', 'common', 'dev', 'entry']));
  });

  it('no import points where its layer may not go', () => {
    const wrong: string[] = [];
    for (const file of files) {
      const from = layerOf(file);
      for (const m of readFileSync(file, 'utf8').matchAll(IMPORT)) {
        const to = layerOf(resolve(dirname(file), m[1]!));
        const rel = relative(SRC, file);
        if (to === 'dev' && from !== 'dev' && rel !== DEV_LOADER) wrong.push(`${rel} -> ${m[1]} (dev tooling is not in the image)`);
        else if (to !== 'dev' && !ALLOWED[from].includes(to)) wrong.push(`${rel} (${from}) -> ${m[1]} (${to})`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it("the image loads node:http with require() (common/net/node-http.ts), never by a value import", () => {
    // An ES import of node:http reads its lazy WebSocket exports and makes Node run its bundled
    // undici in every sidecar (node-http.ts says how much); `import type` is erased and costs nothing.
    const valueImport = /^\s*import\s+(?!type\b)[^;]*?from\s+['"](?:node:)?http['"]/m;
    const offenders = files.filter((f) => layerOf(f) !== 'dev' && valueImport.test(readFileSync(f, 'utf8'))).map((f) => relative(SRC, f));
    expect(offenders).toEqual([]);
  });
});
