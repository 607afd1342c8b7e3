import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/common/log/logger.ts';
import { boundField, DEFAULT_LOG_LIMITS, LogLimiter, LogLimitError, MAX_FIELD_BYTES, TOTAL_FACTOR, truncatedMarker, type SuppressionSummary } from '../../../src/common/log/log-limiter.ts';
import { RequestLog } from '../../../src/data-plane/sidecar/request-log.ts';

/** A clock the test moves by hand (ms). */
function clock() {
  let t = 1_000;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

function limiter(opts: { linesPerSecond?: number; burst?: number; maxKeys?: number } = {}) {
  const c = clock();
  const summaries: SuppressionSummary[] = [];
  // A summary interval no test waits for: summaries come from flush()/close() here.
  const l = new LogLimiter({ ...opts, now: c.now, summaryIntervalMs: 3_600_000, onSuppressed: (s) => summaries.push(s) });
  return { l, c, summaries };
}

describe('LogLimiter', () => {
  it('lets a burst through, then the refill rate; counts what it drops and reports the exact count once', () => {
    const { l, c, summaries } = limiter({ linesPerSecond: 2, burst: 3 });
    const first = Array.from({ length: 10 }, () => l.allow('denied', 'route a'));
    expect(first).toEqual([true, true, true, false, false, false, false, false, false, false]);
    c.advance(500); // one token at 2/s
    expect([l.allow('denied', 'route a'), l.allow('denied', 'route a')]).toEqual([true, false]);
    l.flush();
    expect(summaries).toEqual([{ suppressed: 8, byEvent: { denied: 8 }, periodMs: 500 }]);
    l.flush();
    expect(summaries).toHaveLength(1);
  });

  it('keeps one bucket per (event, reason): a flood on one route does not silence another', () => {
    const { l } = limiter({ linesPerSecond: 1, burst: 2 });
    for (let i = 0; i < 100; i++) l.allow('denied', 'route a');
    expect(l.allow('denied', 'route b')).toBe(true);
    expect(l.allow('admin_refused', 'route a')).toBe(true);
  });

  it('bounds all keys together at TOTAL_FACTOR times the per-key budget', () => {
    const { l, summaries } = limiter({ linesPerSecond: 1, burst: 2 });
    let written = 0;
    for (let k = 0; k < 50; k++) for (let i = 0; i < 5; i++) if (l.allow('denied', `route ${k}`)) written++;
    expect(written).toBe(2 * TOTAL_FACTOR);
    l.close();
    expect(summaries[0]!.suppressed).toBe(250 - written);
  });

  it('past maxKeys, new keys share one overflow bucket per event', () => {
    const { l } = limiter({ linesPerSecond: 1, burst: 1, maxKeys: 2 });
    expect([l.allow('denied', 'a'), l.allow('denied', 'b')]).toEqual([true, true]);
    expect(l.allow('denied', 'c')).toBe(true); // the overflow bucket's one token
    expect(l.allow('denied', 'd')).toBe(false); // same overflow bucket
  });

  it('writes a summary on its own once the interval passes (timer), then none while nothing is dropped', async () => {
    const summaries: SuppressionSummary[] = [];
    const l = new LogLimiter({ linesPerSecond: 1, burst: 1, summaryIntervalMs: 20, onSuppressed: (s) => summaries.push(s) });
    l.allow('denied', 'x');
    l.allow('denied', 'x');
    l.allow('denied', 'x');
    await new Promise((r) => setTimeout(r, 60));
    expect(summaries.map((s) => s.suppressed)).toEqual([2]);
    l.close();
    expect(summaries).toHaveLength(1);
  });

  it('refuses limits that are not positive, with a coded error', () => {
    expect(() => new LogLimiter({ linesPerSecond: 0, onSuppressed: () => undefined })).toThrow(LogLimitError);
    expect(() => new LogLimiter({ burst: 0.5, onSuppressed: () => undefined })).toThrow('burst must be a positive integer; got 0.5');
    expect(new LogLimiter({ onSuppressed: () => undefined }).limits).toEqual(DEFAULT_LOG_LIMITS);
  });
});

describe('boundField', () => {
  it('keeps values that fit, cuts longer ones with a marker naming the full size', () => {
    expect(boundField('/orders/1')).toBe('/orders/1');
    const exact = 'x'.repeat(MAX_FIELD_BYTES);
    expect(boundField(exact)).toBe(exact);
    const long = 'y'.repeat(8_192);
    expect(boundField(long)).toBe('y'.repeat(MAX_FIELD_BYTES) + truncatedMarker(8_192));
    expect(boundField(undefined)).toBeUndefined();
    expect(boundField(null)).toBeNull();
  });

  it('never cuts a multi-byte character in half', () => {
    const value = 'é'.repeat(200); // 400 bytes
    const out = boundField(value);
    expect(out).toBe('é'.repeat(MAX_FIELD_BYTES / 2) + truncatedMarker(400));
    const odd = 'a' + '€'.repeat(100); // 301 bytes; '€' is 3 bytes: 'a' + 85 of them is exactly 256
    const cut = boundField(odd);
    const prefix = cut.slice(0, cut.indexOf('…'));
    expect(Buffer.byteLength(prefix)).toBeLessThanOrEqual(MAX_FIELD_BYTES);
    expect(prefix).toBe('a' + '€'.repeat(85));
    expect(prefix.includes('\ufffd')).toBe(false);
  });
});

describe('RequestLog through the limiter', () => {
  function capture() {
    const out: Record<string, unknown>[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const l of chunk.toString('utf8').split('\n')) if (l !== '') out.push(JSON.parse(l));
        cb();
      },
    });
    return { out, logger: createLogger({ name: 'sidecar', destination: stream }) };
  }

  it('denials beyond the burst become one log_suppressed line with the exact count; fields are bounded', () => {
    const { out, logger } = capture();
    const c = clock();
    const log = new RequestLog(logger, { limits: { linesPerSecond: 1, burst: 2 }, now: c.now, summaryIntervalMs: 3_600_000 });
    for (let i = 0; i < 10; i++) log.denied({ direction: 'inbound', caller: 'spiffe://cluster.local/ns/a/sa/b', route: 'admin', reason: 'r', code: 'caller-not-allowed', method: 'X'.repeat(1_000), path: `/admin/${'p'.repeat(1_000)}`, port: 8080 });
    log.close();
    expect(out.filter((l) => l.event === 'denied')).toHaveLength(2);
    expect(out[0]).toMatchObject({ event: 'denied', code: 'caller-not-allowed', method: 'X'.repeat(MAX_FIELD_BYTES) + truncatedMarker(1_000) });
    expect(String(out[0]!.path)).toHaveLength(MAX_FIELD_BYTES + truncatedMarker(1_007).length);
    expect(out[2]).toMatchObject({ level: 'warn', event: 'log_suppressed', suppressed: 8, byEvent: { denied: 8 }, linesPerSecond: 1, burst: 2 });
    expect(out[2]!.msg).toBe('8 log lines suppressed by the log rate limit; metrics count every event');
  });

  it('admin refusals share the limiter, keyed by their reason', () => {
    const { out, logger } = capture();
    const c = clock();
    const log = new RequestLog(logger, { limits: { linesPerSecond: 1, burst: 1 }, now: c.now, summaryIntervalMs: 3_600_000 });
    for (let i = 0; i < 3; i++) log.adminRefused({ endpoint: 'connections', reason: 'not_loopback', method: 'GET', path: '/connections', remoteAddress: '10.0.0.9' });
    log.adminRefused({ endpoint: 'app-health', reason: 'unknown_probe', method: 'GET', path: '/app-health/__proto__', remoteAddress: '10.0.0.9' });
    log.close();
    expect(out.map((l) => [l.event, l.reason ?? l.suppressed])).toEqual([
      ['admin_refused', 'not_loopback'],
      ['admin_refused', 'unknown_probe'],
      ['log_suppressed', 2],
    ]);
  });
});

describe('RequestLog.withAccessLog', () => {
  it('adds one access line per finished request only when the access log is on, and keeps the metrics hook', () => {
    const out: Record<string, unknown>[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const l of chunk.toString('utf8').split('\n')) if (l !== '') out.push(JSON.parse(l));
        cb();
      },
    });
    const logger = createLogger({ name: 'sidecar', destination: stream });
    let counted = 0;
    const observer = { requestFinished: () => void counted++ };
    expect(new RequestLog(logger).withAccessLog(observer)).toBe(observer);
    const wrapped = new RequestLog(logger, { accessLog: true }).withAccessLog(observer);
    wrapped.requestFinished!('inbound', null, undefined, 'GET', 200, null, 'allow', 0.0012345, 10, 20);
    expect(counted).toBe(1);
    expect(out).toEqual([expect.objectContaining({ level: 'info', event: 'access', peer: 'unauthenticated', route: null, method: 'GET', status: 200, authz: 'allow', durationMs: 1.235, requestBytes: 10, responseBytes: 20 })]);
  });
});
