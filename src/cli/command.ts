import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from '../common/errors/meshlet-error.ts';
import { ConfigError, type Env } from '../common/config/env.ts';

/** Where a command writes; injectable so tests can run commands in-process. */
export interface CommandIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream;
}

export interface Command {
  /** e.g. "ca init" */
  name: string;
  summary: string;
  /** Full --help text, usage line first. */
  help: string;
  /** Returns the process exit status. Throw UsageError for bad arguments. */
  run(argv: string[], io: CommandIo): Promise<number>;
}

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * A flag the command does not know (usually a typo). main() prints it as one line with the
 * closest known flag, and a pointer to --help instead of the whole help.
 */
export class UnknownFlagError extends UsageError {
  readonly flag: string;
  readonly suggestion: string | undefined;
  constructor(flag: string, suggestion: string | undefined) {
    super(`unknown flag ${flag}${suggestion ? ` (did you mean ${suggestion}?)` : ''}`);
    this.flag = flag;
    this.suggestion = suggestion;
  }
}

/** Levenshtein distance (insert, delete, substitute: 1 each). */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/**
 * The known flag a mistyped one most likely meant: the nearest by edit distance when it is
 * close (at most a third of the name, at least 1, at most 3 edits), else the only flag the
 * typed name is a prefix of; undefined when nothing is close, so a guess is never wild.
 */
export function closestFlag(typed: string, known: readonly string[]): string | undefined {
  const name = typed.replace(/^-+/, '');
  if (name === '') return undefined;
  let best: { flag: string; d: number } | undefined;
  for (const flag of known) {
    const d = editDistance(name, flag);
    if (!best || d < best.d) best = { flag, d };
  }
  const limit = Math.min(3, Math.max(1, Math.floor(name.length / 3)));
  if (best && best.d <= limit) return `--${best.flag}`;
  const prefixed = known.filter((f) => f.startsWith(name));
  return prefixed.length === 1 ? `--${prefixed[0]}` : undefined;
}

/**
 * Strict flag parsing shared by every command: unknown flags, missing values and stray
 * positionals become UsageError with the exact offending token in the message.
 */
export function parseFlags<O extends Options>(argv: string[], options: O, allowPositionals = false) {
  const all = { ...options, help: { type: 'boolean', short: 'h' } } as const;
  try {
    return parseArgs({ args: argv, options: all, allowPositionals, strict: true });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const token = /'([^']*)'/.exec(e.message)?.[1];
    switch (e.code) {
      case 'ERR_PARSE_ARGS_UNKNOWN_OPTION': {
        const flag = token ?? '?';
        throw new UnknownFlagError(flag, flag.startsWith('--') ? closestFlag(flag, Object.keys(all)) : undefined);
      }
      case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE': {
        const flag = token?.split(' ')[0] ?? '?';
        throw new UsageError(/does not take an argument/.test(e.message) ? `${flag} takes no value` : `${flag} needs a value`);
      }
      case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
        throw new UsageError(`unexpected argument ${JSON.stringify(token ?? '')}: this command takes only flags`);
      default:
        throw new UsageError(e.message);
    }
  }
}

export function requireFlag(values: Record<string, unknown>, name: string): string {
  const v = values[name];
  if (typeof v !== 'string' || v === '') throw new UsageError(`missing required flag --${name}`);
  return v;
}

/**
 * Runs a reader of environment configuration with flags overriding their variables
 * (flag name -> variable name). A bad value that came from a flag is a usage error (exit 2)
 * naming the flag; a bad value from the environment stays a ConfigError (exit 1).
 */
export function readWithFlags<T>(values: Record<string, unknown>, flagToEnv: Readonly<Record<string, string>>, read: (env: Env) => T, baseEnv: Env = process.env): T {
  const env: Record<string, string | undefined> = { ...baseEnv };
  const fromFlag = new Map<string, string>();
  for (const [flag, variable] of Object.entries(flagToEnv)) {
    const v = values[flag];
    if (typeof v === 'string') {
      env[variable] = v;
      fromFlag.set(variable, flag);
    }
  }
  try {
    return read(env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const flagged = err.problems.filter((p) => fromFlag.has(p.variable));
    if (flagged.length === 0) throw err;
    const describe = (p: (typeof err.problems)[number]) =>
      fromFlag.has(p.variable)
        ? `--${fromFlag.get(p.variable)} ${JSON.stringify(p.value ?? '')}: ${p.message}`
        : `${p.variable}=${p.value === undefined ? '(unset)' : JSON.stringify(p.value)}: ${p.message}`;
    throw new UsageError(err.problems.map(describe).join('; '));
  }
}
