import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from '../errors/meshlet-error.ts';

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
 * Strict flag parsing shared by every command: unknown flags, missing values and stray
 * positionals become UsageError with the exact offending token in the message.
 */
export function parseFlags<O extends Options>(argv: string[], options: O, allowPositionals = false) {
  try {
    return parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

export function requireFlag(values: Record<string, unknown>, name: string): string {
  const v = values[name];
  if (typeof v !== 'string' || v === '') throw new UsageError(`missing required flag --${name}`);
  return v;
}
