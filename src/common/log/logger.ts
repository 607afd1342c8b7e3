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

let isoSecond = -1;
let isoPrefix = '';

/**
 * pino's `isoTime` (`,"time":"2026-01-05T10:00:00.000Z"`, RFC 3339 UTC with milliseconds),
 * without a Date and toISOString() per line: the text up to the second is kept and only the
 * milliseconds are written per line (0.05 µs instead of 0.48 µs, a fifth of a decision-log line).
 */
export function isoTime(now = Date.now()): string {
  const second = Math.floor(now / 1000);
  if (second !== isoSecond) {
    isoSecond = second;
    isoPrefix = `,"time":"${new Date(second * 1000).toISOString().slice(0, 20)}`;
  }
  const ms = now - second * 1000;
  return `${isoPrefix}${ms < 10 ? '00' : ms < 100 ? '0' : ''}${ms}Z"`;
}

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
      timestamp: isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}
