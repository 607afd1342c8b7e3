import { pino, type DestinationStream, type Logger } from 'pino';
import { MeshletError } from '../errors/meshlet-error.ts';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
export const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'];

export class LogConfigError extends MeshletError {
  constructor(message: string) {
    super('LOG_BAD_LEVEL', message);
  }
}

export interface LoggerOptions {
  /** From MESHLET_LOG_LEVEL; default info. */
  level?: string;
  /** The process: "sidecar", "identity", "injector"… (the `name` field of every line). */
  name: string;
  /** Fields on every line (pod, namespace). */
  base?: Record<string, string>;
  /** Where lines go; default stderr. Tests pass a stream to read the lines back. */
  destination?: DestinationStream;
}

export type { Logger };

/**
 * JSON lines (pino) on stderr: stdout stays free for command output, and every container log
 * collector reads both. Timestamps are ISO-8601 so a human can read them in `kubectl logs`;
 * the level is its name ("level":"warn"), not pino's number, so log queries need no table.
 * Writes are asynchronous (sonic-boom) — an access log line per request must not block the
 * event loop on a slow pipe; call `logger.flush()` before exiting.
 */
export function createLogger(opts: LoggerOptions): Logger {
  const level = opts.level ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new LogConfigError(`log level must be one of ${LOG_LEVELS.join(', ')}; got "${level}"`);
  }
  const destination = opts.destination ?? pino.destination({ dest: 2, sync: false });
  return pino(
    {
      name: opts.name,
      level,
      base: { pid: process.pid, ...opts.base },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}
