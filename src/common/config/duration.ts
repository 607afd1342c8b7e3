import { MeshletError } from '../errors/meshlet-error.ts';

/**
 * Durations as people write them in flags and environment variables: a sequence of
 * <integer><unit>, units ms, s, m, h, d — "24h", "90m", "30s", "7d", "1h30m", "250ms".
 * Go's time.ParseDuration is the model (plus "d", which certificate lifetimes need); unlike it,
 * a bare number is refused, because "30" could mean seconds or milliseconds.
 */
export class DurationError extends MeshletError {
  constructor(code: DurationErrorCode, message: string) {
    super(code, message);
  }
}

export type DurationErrorCode = 'DURATION_EMPTY' | 'DURATION_MISSING_UNIT' | 'DURATION_BAD_FORMAT' | 'DURATION_NOT_POSITIVE' | 'DURATION_TOO_LARGE';

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const PART = /(\d+)(ms|s|m|h|d)/y;

/** Parses a duration to milliseconds; throws DurationError naming `what` (e.g. "--ttl"). */
export function parseDuration(input: string, what = 'duration'): number {
  const text = input.trim();
  if (text === '') throw new DurationError('DURATION_EMPTY', `${what} is empty; write e.g. 24h, 90m, 30s or 7d`);
  if (/^\d+$/.test(text)) throw new DurationError('DURATION_MISSING_UNIT', `${what} "${input}" has no unit; write e.g. ${text}s or ${text}h`);
  let total = 0;
  PART.lastIndex = 0;
  while (PART.lastIndex < text.length) {
    const at = PART.lastIndex;
    const m = PART.exec(text);
    if (!m) {
      throw new DurationError('DURATION_BAD_FORMAT', `${what} "${input}" is not a duration (at "${text.slice(at)}"); write e.g. 24h, 90m, 30s, 7d or 1h30m`);
    }
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
  }
  if (!Number.isSafeInteger(total)) throw new DurationError('DURATION_TOO_LARGE', `${what} "${input}" is too large`);
  if (total <= 0) throw new DurationError('DURATION_NOT_POSITIVE', `${what} "${input}" must be greater than zero`);
  return total;
}

/** The shortest exact form of a millisecond count in the units above ("36h", "90m", "1500ms"). */
export function formatDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    const size = UNIT_MS[unit]!;
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
