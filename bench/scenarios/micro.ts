import { spawn } from 'node:child_process';
import { globSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const REPO = join(import.meta.dirname, '..', '..');

/**
 * Where micro-benchmarks live: beside the code they measure (`*.bench.ts` under src/), plus the bench's own in bench/micro/. Found by name on every run, so a new one
 * is picked up without being registered anywhere.
 */
export const MICRO_PATTERNS = ['src/**/*.bench.ts', 'bench/micro/*.ts'] as const;

/**
 * A micro-benchmark is a plain CLI whose defaults are its full run. A line
 * `@bench-quick-args ARGS` in the file gives the arguments of a tiny run for --quick (without
 * one, --quick runs it at full size).
 */
const QUICK_ARGS = /@bench-quick-args[ \t]+(.+)$/m;

/** Each one is its own process with a time bound; past it, it is killed and reported as failed. */
const TIME_BOUND_S = { full: 300, quick: 60 } as const;

export interface MicroBenchResult {
  /** Repository-relative path, e.g. src/data-plane/proxy/http/headers.bench.ts. */
  file: string;
  args: string[];
  ok: boolean;
  /** Exit status, or the reason it did not finish ("timed out after 60 s"). */
  exit: string;
  seconds: number;
  /** Its stdout, verbatim: these benches print their own tables or JSON lines. */
  output: string;
  /** The last line of its stdout when that is a JSON object, for machine readers. */
  figures?: Record<string, unknown>;
  /** The tail of its stderr when it failed. */
  stderr?: string;
}

export interface MicroResults {
  patterns: readonly string[];
  benches: MicroBenchResult[];
}

export function discoverMicroBenches(): string[] {
  return globSync([...MICRO_PATTERNS], { cwd: REPO })
    .filter((f) => !f.endsWith('.test.ts') && !f.endsWith('.d.ts'))
    .sort();
}

function quickArgs(file: string): string[] {
  const m = QUICK_ARGS.exec(readFileSync(join(REPO, file), 'utf8'));
  return m ? m[1]!.trim().split(/\s+/) : [];
}

function lastJsonLine(stdout: string): Record<string, unknown> | undefined {
  const last = stdout.trim().split('\n').at(-1) ?? '';
  if (!last.startsWith('{')) return undefined;
  try {
    return JSON.parse(last) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

function runOne(file: string, args: string[], boundS: number): Promise<MicroBenchResult> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [join(REPO, file), ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, boundS * 1000);
    const finish = (exit: string, ok: boolean) => {
      clearTimeout(timer);
      const output = stdout.trim();
      const figures = lastJsonLine(output);
      resolve({
        file,
        args,
        ok: ok && output.length > 0,
        exit: ok && output.length === 0 ? 'exited 0 but printed nothing' : exit,
        seconds: Math.round((performance.now() - t0) / 100) / 10,
        output,
        ...(figures ? { figures } : {}),
        ...(ok && output.length > 0 ? {} : { stderr: stderr.trim() }),
      });
    };
    child.once('error', (err) => finish(`could not start: ${err.message}`, false));
    child.once('exit', (code, signal) => {
      if (timedOut) finish(`timed out after ${boundS} s (killed)`, false);
      else finish(signal ? `killed by ${signal}` : `exited ${code}`, code === 0);
    });
  });
}

/** Runs every discovered micro-benchmark, one after the other (they share two cores with nothing else of the bench). */
export async function runMicroBenches(opts: { quick: boolean; log: (line: string) => void }): Promise<MicroResults> {
  const files = discoverMicroBenches();
  const bound = opts.quick ? TIME_BOUND_S.quick : TIME_BOUND_S.full;
  opts.log(`micro: ${files.length} benchmarks (${MICRO_PATTERNS.join(', ')}), each its own process, at most ${bound} s each`);
  const benches: MicroBenchResult[] = [];
  for (const file of files) {
    const args = opts.quick ? quickArgs(file) : [];
    const r = await runOne(file, args, bound);
    opts.log(`micro: ${file}${args.length ? ` ${args.join(' ')}` : ''}: ${r.ok ? `done in ${r.seconds} s` : `FAILED (${r.exit})${r.stderr ? `: ${r.stderr.split('\n').slice(-3).join(' | ')}` : ''}`}`);
    benches.push(r);
  }
  return { patterns: MICRO_PATTERNS, benches };
}
