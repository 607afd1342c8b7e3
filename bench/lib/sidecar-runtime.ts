import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { DEFAULT_PROXY_RESOURCES } from '../../src/control-plane/injector/patch/containers.ts';
import { memoryQuantityBytes, proxyRuntime } from '../../src/control-plane/injector/patch/heap-settings.ts';
import { BenchError } from './bench-error.ts';

// What the bench's sidecars run: by default exactly what the injected container runs — the
// production artifact (`npm run build` → dist/bin/meshlet.js) with the Node flags and the
// environment the injector gives the sidecar for the default memory limit (heap flags and one
// GC thread on the command line, MALLOC_ARENA_MAX). `--sources` runs bin/meshlet.js (the
// TypeScript sources through type stripping) with the same, so an A/B changes one thing.

const REPO = join(import.meta.dirname, '..', '..');
const BUILD_SCRIPT = join(REPO, 'scripts', 'build-dist.mjs');
const ARTIFACT_ENTRY = join(REPO, 'dist', 'bin', 'meshlet.js');
const SOURCES_ENTRY = join(REPO, 'bin', 'meshlet.js');

export interface SidecarRuntime {
  /** The script node runs (absolute): dist/bin/meshlet.js or bin/meshlet.js. */
  entry: string;
  /** Node's flags before the script, as the injector's command has them for the default memory limit. */
  nodeFlags: string[];
  /** The runtime environment the injector sets (MALLOC_ARENA_MAX): every sidecar gets it. */
  env: Record<string, string>;
  /** One line for the report: what ran, how it was built, with which Node flags and environment. */
  note: string;
}

/** The injector's Node flags and runtime environment for a sidecar with the default memory limit. */
function defaultProxyRuntime(): { env: Record<string, string>; nodeFlags: string[]; memoryLimit: string } {
  const memoryLimit = DEFAULT_PROXY_RESOURCES.memoryLimit;
  const bytes = memoryQuantityBytes(memoryLimit);
  if (bytes === null) throw new BenchError('BENCH_SIDECAR_NOT_STARTED', `the injector's default memory limit ${JSON.stringify(memoryLimit)} is not a memory quantity`);
  return { ...proxyRuntime(bytes), memoryLimit };
}

/**
 * Builds the artifact (unless `sources`) and says what the sidecars will run. The build is the
 * script `npm run build` runs, started with the Node the sidecars run on: `npm` itself may not
 * be on PATH when the bench is started as `node bench/run.ts`. It rebuilds every time — a stale
 * dist/ would measure yesterday's code — and takes a few seconds.
 */
export function prepareSidecarRuntime(o: { sources: boolean; log: (line: string) => void }): SidecarRuntime {
  const { env, nodeFlags, memoryLimit } = defaultProxyRuntime();
  const options = `node flags "${nodeFlags.join(' ')}", ${Object.entries(env).map(([k, v]) => `${k}="${v}"`).join(' ')} (the injector's, for the default ${memoryLimit} memory limit)`;
  if (o.sources) {
    return { entry: SOURCES_ENTRY, nodeFlags, env, note: `TypeScript sources (--sources): node ${relative(REPO, SOURCES_ENTRY)}, ${options}` };
  }
  const started = Date.now();
  o.log(`building the production artifact: node ${relative(REPO, BUILD_SCRIPT)} (npm run build)`);
  const r = spawnSync(process.execPath, [BUILD_SCRIPT], { cwd: REPO, encoding: 'utf8', timeout: 300_000 });
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  if (r.error || r.status !== 0 || !existsSync(ARTIFACT_ENTRY)) {
    const output = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').slice(-15).join('\n');
    const why = r.error ? r.error.message : r.status !== 0 ? `exit ${r.status ?? r.signal}` : `it exited 0 but wrote no ${relative(REPO, ARTIFACT_ENTRY)}`;
    throw new BenchError('BENCH_BUILD_FAILED', `npm run build (${relative(REPO, BUILD_SCRIPT)}) failed (${why}), so there is no production artifact to measure (--sources runs the TypeScript sources instead):\n${output || '(no output)'}`);
  }
  o.log(`built ${relative(REPO, ARTIFACT_ENTRY)} in ${seconds} s`);
  return { entry: ARTIFACT_ENTRY, nodeFlags, env, note: `production artifact: node ${relative(REPO, ARTIFACT_ENTRY)} (npm run build, fresh for this run), ${options}` };
}
