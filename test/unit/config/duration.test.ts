import { describe, expect, it } from 'vitest';
import { DurationError, formatDuration, parseDuration } from '../../../src/common/config/duration.ts';

describe('parseDuration', () => {
  const good: Array<[string, number]> = [
    ['24h', 24 * 3600_000],
    ['90m', 90 * 60_000],
    ['30s', 30_000],
    ['7d', 7 * 86_400_000],
    ['250ms', 250],
    ['1h30m', 5_400_000],
    ['1d12h', 36 * 3600_000],
    [' 8760h ', 8760 * 3600_000],
  ];
  for (const [input, ms] of good) {
    it(`${JSON.stringify(input)} = ${ms} ms`, () => expect(parseDuration(input)).toBe(ms));
  }

  const bad: Array<[string, string]> = [
    ['', 'DURATION_EMPTY'],
    ['   ', 'DURATION_EMPTY'],
    ['30', 'DURATION_MISSING_UNIT'],
    ['1y', 'DURATION_BAD_FORMAT'],
    ['h', 'DURATION_BAD_FORMAT'],
    ['-5m', 'DURATION_BAD_FORMAT'],
    ['1.5h', 'DURATION_BAD_FORMAT'],
    ['10 m', 'DURATION_BAD_FORMAT'],
    ['5mx', 'DURATION_BAD_FORMAT'],
    ['0s', 'DURATION_NOT_POSITIVE'],
    ['99999999999999999d', 'DURATION_TOO_LARGE'],
  ];
  for (const [input, code] of bad) {
    it(`${JSON.stringify(input)} -> ${code}`, () => {
      expect(() => parseDuration(input, '--ttl')).toThrow(DurationError);
      expect(() => parseDuration(input, '--ttl')).toThrow(expect.objectContaining({ code, message: expect.stringContaining('--ttl') }));
    });
  }
});

describe('formatDuration', () => {
  it('uses the largest exact unit', () => {
    expect(formatDuration(7 * 86_400_000)).toBe('7d');
    expect(formatDuration(36 * 3600_000)).toBe('36h');
    expect(formatDuration(90 * 60_000)).toBe('90m');
    expect(formatDuration(1500)).toBe('1500ms');
    for (const text of ['8760h', '45s', '3d']) expect(parseDuration(formatDuration(parseDuration(text)))).toBe(parseDuration(text));
  });
});
