import { describe, expect, it } from 'vitest';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { renderMetrics } from '../../../src/data-plane/metrics/exposition.ts';
import { ExpositionParseError, parseExposition } from '../../../src/cli/scrape/parse-exposition.ts';

describe('parseExposition', () => {
  it('reads back what exposition.ts renders, in both formats, escapes included', async () => {
    const registry = new Registry();
    new Counter({ name: 'a_total', help: 'A.', labelNames: ['x'], registers: [registry] }).inc({ x: 'quote " slash \\ nl \n end' }, 3);
    new Histogram({ name: 'h_seconds', help: 'H.', buckets: [0.5], registers: [registry] }).observe(0.25);
    new Gauge({ name: 'g_info', help: 'G.', labelNames: ['v'], registers: [registry] }).set({ v: '1' }, 1);
    for (const format of ['text', 'openmetrics'] as const) {
      const { samples, types } = parseExposition(await renderMetrics(registry, format));
      expect(samples).toEqual([
        { name: 'a_total', labels: { x: 'quote " slash \\ nl \n end' }, value: 3 },
        { name: 'h_seconds_bucket', labels: { le: '0.5' }, value: 1 },
        { name: 'h_seconds_bucket', labels: { le: '+Inf' }, value: 1 },
        { name: 'h_seconds_sum', labels: {}, value: 0.25 },
        { name: 'h_seconds_count', labels: {}, value: 1 },
        { name: 'g_info', labels: { v: '1' }, value: 1 },
      ]);
      expect(types.get(format === 'text' ? 'a_total' : 'a')).toBe('counter');
      expect(types.get('h_seconds')).toBe('histogram');
    }
  });

  it('reads special values, timestamps, exemplars and CRLF lines', () => {
    const { samples } = parseExposition('x NaN\r\ny{a="b",} +Inf 1700000000000\nz -Inf\nw_total 2 # {trace_id="t"} 1 1.5\nv 1e-3\n');
    expect(samples.map((s) => [s.name, s.value])).toEqual([
      ['x', NaN],
      ['y', Infinity],
      ['z', -Infinity],
      ['w_total', 2],
      ['v', 0.001],
    ]);
    expect(samples[1]!.labels).toEqual({ a: 'b' });
  });

  it.each([
    ['<html><body>hi</body></html>', 1, 'expected a metric name, got "<html><body>hi</body></html>"'],
    ['ok 1\nbad{x=1} 2', 2, 'expected ="…" after label x'],
    ['m{x="1} 2', 1, 'unterminated value of label x'],
    ['m{x="\\t"} 2', 1, 'bad escape \\t in label x'],
    ['m', 1, 'expected a space and a value after m'],
    ['m one', 1, '"one" is not a sample value'],
    ['m 1 2 3', 1, 'unexpected text after the value of m'],
  ])('refuses %j at line %i with a precise message', (text, line, message) => {
    let caught: unknown;
    try {
      parseExposition(text);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ExpositionParseError);
    expect((caught as ExpositionParseError).code).toBe('METRICS_PARSE_ERROR');
    expect((caught as ExpositionParseError).line).toBe(line);
    expect((caught as Error).message).toBe(`line ${line}: ${message}`);
  });
});
