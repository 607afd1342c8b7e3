import { FieldError } from './env.ts';

/**
 * A duration variable (`500ms`, `30s`, `5m`, `24h`, `7d`) -> milliseconds, for EnvReader.
 * Kept apart from the CLI's duration flags only by its error type; both accept the same forms.
 */
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function durationField(raw: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(raw);
  if (!m) throw new FieldError('must be a duration like 500ms, 30s, 5m, 24h or 7d');
  const ms = Number(m[1]) * UNIT_MS[m[2]!]!;
  if (!Number.isFinite(ms) || ms <= 0) throw new FieldError('must be a positive duration');
  return Math.round(ms);
}
