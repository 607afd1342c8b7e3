import type * as http from 'node:http';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, isoTime } from '../../../src/common/log/logger.ts';
import { LogLimiter, type SuppressionSummary } from '../../../src/common/log/log-limiter.ts';
import { ConfigError } from '../../../src/common/config/env.ts';
import { readHttp1Head, readStreamHead } from '../../../src/data-plane/proxy/pipeline/request-head.ts';
import type { AuthorizationDecision } from '../../../src/data-plane/proxy/request-authorizer.ts';
import { DecisionLog, parseTraceparent, sampledByTraceId, traceparentOf } from '../../../src/data-plane/sidecar/decision-log.ts';
import { readSidecarConfig } from '../../../src/data-plane/sidecar/sidecar-env.ts';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN_ID = '00f067aa0ba902b7';
const VALID = `00-${TRACE_ID}-${SPAN_ID}-01`;
const CALLER = 'spiffe://cluster.local/ns/web/sa/frontend';
const SERVER = 'spiffe://cluster.local/ns/shop/sa/orders';

function h1Head(rawHeaders: string[], url = '/orders/1', method = 'GET'): ReturnType<typeof readHttp1Head> {
  return readHttp1Head({ rawHeaders: ['Host', 'orders', ...rawHeaders], method, url, httpVersionMinor: 1 } as unknown as http.IncomingMessage, 100);
}

function h2Head(fields: string[], contentType?: string): ReturnType<typeof readStreamHead> {
  return readStreamHead([':method', 'POST', ':path', '/shop.Orders/Get', ':authority', 'orders', ':scheme', 'https', ...(contentType ? ['content-type', contentType] : []), ...fields], 100);
}

function capture(): { lines: Record<string, unknown>[]; stream: Writable } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l !== '') lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { lines, stream };
}

const ALLOW = Object.freeze({ decision: 'allow', route: 'list-orders', reason: 'caller is authorized by route "list-orders"', code: 'route-allowed', wouldDeny: false }) as AuthorizationDecision;
const DENY = Object.freeze({ decision: 'deny', route: 'admin', reason: 'caller is not authorized by route "admin"', code: 'caller-not-allowed', wouldDeny: false }) as AuthorizationDecision;
const WOULD_DENY = Object.freeze({ decision: 'allow', route: null, reason: 'audit: would deny: no route matched; default policy is audit', code: 'no-route-matched', wouldDeny: true }) as AuthorizationDecision;

describe('parseTraceparent (W3C Trace Context §3.2): the ids of a valid value, null otherwise — never repaired', () => {
  it('reads a version 00 value', () => {
    expect(parseTraceparent(VALID)).toEqual({ traceId: TRACE_ID, spanId: SPAN_ID });
    expect(parseTraceparent(`00-${TRACE_ID}-${SPAN_ID}-00`)).toEqual({ traceId: TRACE_ID, spanId: SPAN_ID });
  });

  it('reads a future version as 00, with more after a dash', () => {
    expect(parseTraceparent(`01-${TRACE_ID}-${SPAN_ID}-01`)).toEqual({ traceId: TRACE_ID, spanId: SPAN_ID });
    expect(parseTraceparent(`cc-${TRACE_ID}-${SPAN_ID}-01-what-the-future-holds`)).toEqual({ traceId: TRACE_ID, spanId: SPAN_ID });
  });

  const invalid: Record<string, string> = {
    empty: '',
    'version ff': `ff-${TRACE_ID}-${SPAN_ID}-01`,
    'version 00 with more': `00-${TRACE_ID}-${SPAN_ID}-01-x`,
    'future version, more without a dash': `01-${TRACE_ID}-${SPAN_ID}-01x`,
    'uppercase trace id': `00-${TRACE_ID.toUpperCase()}-${SPAN_ID}-01`,
    'uppercase span id': `00-${TRACE_ID}-00F067AA0BA902B7-01`,
    'uppercase version': `0A-${TRACE_ID}-${SPAN_ID}-01`,
    'uppercase flags': `00-${TRACE_ID}-${SPAN_ID}-0F`,
    'all-zero trace id': `00-${'0'.repeat(32)}-${SPAN_ID}-01`,
    'all-zero span id': `00-${TRACE_ID}-${'0'.repeat(16)}-01`,
    'short trace id': `00-${TRACE_ID.slice(1)}-${SPAN_ID}-01`,
    'long trace id': `00-${TRACE_ID}a-${SPAN_ID}-01`,
    'short span id': `00-${TRACE_ID}-${SPAN_ID.slice(1)}-01`,
    'one-digit flags': `00-${TRACE_ID}-${SPAN_ID}-1`,
    'non-hex': `00-${TRACE_ID.slice(0, 31)}g-${SPAN_ID}-01`,
    'wrong separators': `00_${TRACE_ID}_${SPAN_ID}_01`,
    'leading space': ` ${VALID}`,
    'trailing space': `${VALID} `,
    'one-digit version': `0-${TRACE_ID}-${SPAN_ID}-01x`,
  };
  for (const [name, value] of Object.entries(invalid)) {
    it(`refuses ${name}`, () => expect(parseTraceparent(value)).toBeNull());
  }
});

describe('traceparentOf: the traceparent forwarded to the app', () => {
  it('finds it in an HTTP/1.1 head whatever the case of its name', () => {
    expect(traceparentOf(h1Head(['traceparent', VALID]))).toBe(VALID);
    expect(traceparentOf(h1Head(['TraceParent', VALID]))).toBe(VALID);
    expect(traceparentOf(h1Head(['TRACEPARENT', VALID]))).toBe(VALID);
  });

  it('finds it in an HTTP/2 head', () => {
    expect(traceparentOf(h2Head(['traceparent', VALID]))).toBe(VALID);
  });

  it('null without one, and with more than one (ambiguous)', () => {
    expect(traceparentOf(h1Head(['tracestate', 'a=b']))).toBeNull();
    expect(traceparentOf(h1Head(['traceparent', VALID, 'traceparent', VALID]))).toBeNull();
    expect(traceparentOf(h2Head(['traceparent', VALID, 'traceparent', VALID]))).toBeNull();
  });

  it('null when the caller made it hop-by-hop (Connection: traceparent): it is not forwarded either', () => {
    expect(traceparentOf(h1Head(['Connection', 'traceparent', 'traceparent', VALID]))).toBeNull();
  });
});

describe('sampledByTraceId', () => {
  const ids = Array.from({ length: 20_000 }, (_, i) => (BigInt(i) * 0x9e3779b97f4a7c15n + 0x1234567n).toString(16).padStart(32, '0').slice(-32));

  it('0 keeps none, 1 keeps every id (the largest included)', () => {
    expect(ids.some((id) => sampledByTraceId(id, 0))).toBe(false);
    expect(ids.every((id) => sampledByTraceId(id, 1))).toBe(true);
    expect(sampledByTraceId('f'.repeat(32), 1)).toBe(true);
    expect(sampledByTraceId('f'.repeat(32), 0.999999)).toBe(false);
  });

  it('is a function of the id alone, reads its last 13 hex digits, and nests: kept at r means kept at any r2 > r', () => {
    for (const id of ids.slice(0, 500)) {
      expect(sampledByTraceId(id, 0.3)).toBe(sampledByTraceId(id, 0.3));
      expect(sampledByTraceId(id, 0.3)).toBe(sampledByTraceId(`${'f'.repeat(19)}${id.slice(-13)}`, 0.3));
      if (sampledByTraceId(id, 0.3)) expect(sampledByTraceId(id, 0.5)).toBe(true);
    }
    expect(sampledByTraceId(`${'0'.repeat(19)}${'7'.repeat(13)}`, 0.5)).toBe(true);
    expect(sampledByTraceId(`${'0'.repeat(19)}8${'0'.repeat(12)}`, 0.5)).toBe(false);
  });

  it('keeps about the ratio of random ids', () => {
    for (const ratio of [0.01, 0.1, 0.5]) {
      const kept = ids.filter((id) => sampledByTraceId(id, ratio)).length / ids.length;
      expect(Math.abs(kept - ratio)).toBeLessThan(0.02);
    }
  });
});

describe('DecisionLog', () => {
  function make(mode: 'deny' | 'all', allowSample = 1, extra: { hash?: () => string | null; random?: () => number } = {}) {
    const { lines, stream } = capture();
    let clock = 0;
    const summaries: SuppressionSummary[] = [];
    const limiter = new LogLimiter({ linesPerSecond: 1, burst: 2, now: () => clock, onSuppressed: (s) => summaries.push(s), summaryIntervalMs: 3_600_000 });
    const log = new DecisionLog(createLogger({ name: 'sidecar', level: 'fatal', destination: stream }), {
      mode,
      allowSample,
      limiter,
      server: () => SERVER,
      policyHash: extra.hash ?? (() => 'ab'.repeat(32)),
      ...(extra.random ? { random: extra.random } : {}),
    });
    return { log, lines, limiter, summaries, tick: (ms: number) => (clock += ms) };
  }
  const facts = { peer: CALLER, port: 8080, method: 'GET', path: '/orders/1' };

  it('logsAllows only with all and a sample above 0', () => {
    expect(make('deny').log.logsAllows).toBe(false);
    expect(make('all', 0).log.logsAllows).toBe(false);
    expect(make('all', 0.01).log.logsAllows).toBe(true);
    expect(() => make('all', 1.5)).toThrow(RangeError);
  });

  it('writes whatever MESHLET_LOG_LEVEL is (here fatal): info for allow, warn for the rest', () => {
    const { log, lines } = make('all');
    log.decided('inbound', h1Head([]), facts, ALLOW);
    log.decided('inbound', h1Head([]), facts, DENY);
    log.decided('inbound', h1Head([]), facts, WOULD_DENY);
    log.pathRefused('inbound', h1Head([]), CALLER, 8080, '/a%2Fb', 'encoded slash');
    expect(lines.map((l) => [l.level, l.decision])).toEqual([['info', 'allow'], ['warn', 'deny'], ['warn', 'audit_would_deny'], ['warn', 'refused']]);
  });

  it('an outbound line names the destination: server is the identity it must prove (or null), one server field only', () => {
    const raw: string[] = [];
    const lines: Record<string, unknown>[] = [];
    const tee = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const l of String(chunk).split('\n')) {
          if (l === '') continue;
          raw.push(l);
          lines.push(JSON.parse(l) as Record<string, unknown>);
        }
        cb();
      },
    });
    const log = new DecisionLog(createLogger({ name: 'sidecar', level: 'fatal', destination: tee }), {
      mode: 'deny',
      allowSample: 1,
      limiter: new LogLimiter({ linesPerSecond: 100, burst: 100, summaryIntervalMs: 3_600_000, onSuppressed: () => undefined }),
      server: () => CALLER,
      policyHash: () => null,
    });
    log.decided('outbound', h1Head([]), { peer: CALLER, port: 80, method: 'GET', path: '/x' }, DENY, { server: SERVER, destination: 'orders.shop:80' });
    log.connectionDecided('outbound', CALLER, 443, DENY, { server: null, destination: 'api.example.com:443' });
    log.decided('inbound', h1Head([]), facts, DENY);
    expect(lines.map((l) => [l.direction, l.caller, l.server, l.destination])).toEqual([
      ['outbound', CALLER, SERVER, 'orders.shop:80'],
      ['outbound', CALLER, null, 'api.example.com:443'],
      ['inbound', CALLER, CALLER, undefined],
    ]);
    for (const text of raw) expect(text.match(/"server":/g)?.length, text).toBe(1);
  });

  it('deny mode: an allow is never written; denials and would-denies are', () => {
    const { log, lines } = make('deny');
    log.decided('inbound', h1Head(['traceparent', VALID]), facts, ALLOW);
    log.connectionDecided('inbound', CALLER, 5432, ALLOW);
    log.decided('inbound', h1Head([]), facts, WOULD_DENY);
    log.connectionDecided('inbound', CALLER, 5432, DENY);
    expect(lines.map((l) => [l.protocol, l.decision])).toEqual([['http1', 'audit_would_deny'], ['tcp', 'deny']]);
  });

  it('rate limits denials per reason with the shared limiter, exact counts; allows are not limited', () => {
    const { log, lines, limiter, summaries, tick } = make('all');
    for (let i = 0; i < 10; i++) log.decided('inbound', h1Head([]), facts, DENY);
    for (let i = 0; i < 10; i++) log.decided('inbound', h1Head([]), facts, ALLOW);
    for (let i = 0; i < 3; i++) log.pathRefused('inbound', h1Head([]), CALLER, 8080, '/a;b', 'semicolon');
    tick(1_000);
    log.decided('inbound', h1Head([]), facts, DENY); // one token back after a second
    limiter.flush();
    expect(lines.filter((l) => l.decision === 'deny')).toHaveLength(3);
    expect(lines.filter((l) => l.decision === 'allow')).toHaveLength(10);
    expect(lines.filter((l) => l.decision === 'refused')).toHaveLength(2);
    expect(summaries).toEqual([{ suppressed: 9, byEvent: { authz_decision: 9 }, periodMs: expect.any(Number) }]);
  });

  it('samples allows by trace id when there is a valid one, at random otherwise (also for TCP)', () => {
    const kept = `00-${'0'.repeat(19)}${'1'.repeat(13)}-${SPAN_ID}-01`;
    const dropped = `00-${'0'.repeat(19)}${'f'.repeat(13)}-${SPAN_ID}-01`;
    const { log, lines } = make('all', 0.5, { random: () => 0.9 });
    log.decided('inbound', h1Head(['traceparent', kept]), facts, ALLOW);
    log.decided('inbound', h1Head(['traceparent', dropped]), facts, ALLOW);
    log.decided('inbound', h1Head([]), facts, ALLOW); // random 0.9 >= 0.5: dropped
    log.connectionDecided('inbound', CALLER, 5432, ALLOW); // dropped
    log.decided('inbound', h1Head(['traceparent', dropped]), facts, DENY); // denials are not sampled
    expect(lines.map((l) => [l.decision, l.traceId])).toEqual([['allow', kept.slice(3, 35)], ['deny', dropped.slice(3, 35)]]);
    const lucky = make('all', 0.5, { random: () => 0.1 });
    lucky.log.decided('inbound', h1Head([]), facts, ALLOW);
    lucky.log.connectionDecided('inbound', CALLER, 5432, ALLOW);
    expect(lucky.lines).toHaveLength(2);
  });

  it('protocol: http1, h2, grpc (by content-type), tcp', () => {
    const { log, lines } = make('all');
    log.decided('inbound', h1Head([]), facts, ALLOW);
    log.decided('inbound', h2Head([]), facts, ALLOW);
    log.decided('inbound', h2Head([], 'application/grpc+proto'), facts, ALLOW);
    log.connectionDecided('inbound', CALLER, 5432, ALLOW);
    expect(lines.map((l) => l.protocol)).toEqual(['http1', 'h2', 'grpc', 'tcp']);
  });

  it('policyHash follows a policy reload (and null while there is none); server follows the SVID', () => {
    let hash: string | null = null;
    const { log, lines } = make('all', 1, { hash: () => hash });
    log.decided('inbound', h1Head([]), facts, ALLOW);
    hash = 'cd'.repeat(32);
    log.decided('inbound', h1Head([]), facts, ALLOW);
    log.decided('inbound', h1Head([]), facts, DENY);
    expect(lines.map((l) => l.policyHash)).toEqual([null, 'cd'.repeat(32), 'cd'.repeat(32)]);
    expect(lines.every((l) => l.server === SERVER && l.event === 'authz_decision')).toBe(true);
  });

  it('caller null for plaintext; route null stays; method and path bounded', () => {
    const { log, lines } = make('all');
    log.decided('inbound', h1Head([], '/x', 'GET'), { peer: null, port: 8080, method: 'GET', path: `/${'p'.repeat(1_000)}` }, { ...WOULD_DENY });
    expect(lines[0]).toMatchObject({ caller: null, route: null, code: 'no-route-matched' });
    expect(String(lines[0]!.path)).toMatch(/^\/p{255}…\[truncated 1001 bytes\]$/);
  });
});

describe('isoTime: pino\'s ISO time, from a per-second cache', () => {
  it('equals toISOString for every millisecond around second, minute, day and year boundaries', () => {
    const around = [0, Date.UTC(2026, 0, 1), Date.UTC(2026, 11, 31, 23, 59, 59, 990), Date.UTC(2024, 1, 29, 12, 0, 0), 1_767_225_599_500];
    for (const base of around) {
      for (let t = base - 1_200; t <= base + 1_200; t += 7) expect(isoTime(t)).toBe(`,"time":"${new Date(t).toISOString()}"`);
    }
    // Going back in time (a clock step) is still right.
    expect(isoTime(5_000)).toBe(`,"time":"${new Date(5_000).toISOString()}"`);
    expect(isoTime(1_000)).toBe(`,"time":"${new Date(1_000).toISOString()}"`);
  });
});

describe('the decision-log settings', () => {
  const base = { MESHLET_NAMESPACE: 'shop', MESHLET_SERVICE_ACCOUNT: 'orders' };

  it('default: deny, allow sample 1', () => {
    const c = readSidecarConfig(base);
    expect([c.decisionLog, c.decisionLogAllowSample]).toEqual(['deny', 1]);
  });

  it('reads off | deny | all and a decimal share from 0 to 1', () => {
    for (const mode of ['off', 'deny', 'all'] as const) expect(readSidecarConfig({ ...base, MESHLET_DECISION_LOG: mode }).decisionLog).toBe(mode);
    for (const [raw, value] of [['0', 0], ['1', 1], ['0.01', 0.01], ['.25', 0.25], ['1.0', 1], ['0.000001', 0.000001]] as const) {
      expect(readSidecarConfig({ ...base, MESHLET_DECISION_LOG_ALLOW_SAMPLE: raw }).decisionLogAllowSample).toBe(value);
    }
  });

  it('refuses anything else, naming the variable', () => {
    for (const raw of ['on', 'true', 'ALL', 'deny,all']) {
      expect(() => readSidecarConfig({ ...base, MESHLET_DECISION_LOG: raw })).toThrow(/MESHLET_DECISION_LOG.*must be one of off, deny, all/);
    }
    for (const raw of ['1.5', '2', '-0.1', '1e-2', '50%', 'half', '0x1', 'NaN', 'Infinity']) {
      let err: unknown;
      try {
        readSidecarConfig({ ...base, MESHLET_DECISION_LOG_ALLOW_SAMPLE: raw });
      } catch (e) {
        err = e;
      }
      expect(err, raw).toBeInstanceOf(ConfigError);
      expect(String((err as Error).message), raw).toMatch(/MESHLET_DECISION_LOG_ALLOW_SAMPLE.*from 0 to 1/);
    }
  });
});
