/**
 * Micro-benchmark of the denial log limiter: `node src/common/log/log-limiter.bench.ts [N]`.
 * @bench-quick-args 100000
 * Prints ns per call for:
 *  - allowSuppressed: LogLimiter.allow() on a key whose bucket is empty (a flood)
 *  - deniedSuppressed: RequestLog.denied() during a flood (the line is counted, not written)
 *  - deniedWritten:    RequestLog.denied() whose line is written (pino to /dev/null), 8 KB path
 *  - unlimitedWritten: the same line with no limiter and no field bound (what a flood cost before)
 *  - boundShort / boundLong: boundField() on a 20-byte and an 8 KB path
 * An ALLOWED request never reaches any of this: only denials and admin refusals are logged.
 */
import { pino } from 'pino';
import { createLogger } from './logger.ts';
import { boundField, LogLimiter } from './log-limiter.ts';
import { RequestLog } from '../../data-plane/sidecar/request-log.ts';

const N = Number(process.argv[2] ?? 1_000_000);

function nsPer(n: number, fn: (i: number) => void): number {
  for (let i = 0; i < Math.min(n, 100_000); i++) fn(i); // warm up (JIT)
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn(i);
  return Number(process.hrtime.bigint() - start) / n;
}

const devNull = () => pino.destination({ dest: '/dev/null', sync: true });
const LONG = `/admin/${'a'.repeat(8_192)}`;
const facts = { direction: 'inbound' as const, caller: 'spiffe://cluster.local/ns/web/sa/frontend', route: 'admin', reason: 'caller is not authorized by route "admin"', code: 'caller-not-allowed', method: 'GET', path: LONG, port: 8080 };

const flooded = new LogLimiter({ onSuppressed: () => undefined, summaryIntervalMs: 3_600_000 });
for (let i = 0; i < 100; i++) flooded.allow('denied', facts.reason);
const allowSuppressed = nsPer(N, () => flooded.allow('denied', facts.reason));

const floodLog = new RequestLog(createLogger({ name: 'sidecar', destination: devNull() }), { summaryIntervalMs: 3_600_000 });
const deniedSuppressed = nsPer(N, () => floodLog.denied(facts));
floodLog.close();

// A limiter that never runs dry: every line is written (bounded fields, pino, /dev/null).
const writeLog = new RequestLog(createLogger({ name: 'sidecar', destination: devNull() }), { limits: { linesPerSecond: 1e12, burst: 1e9 } });
const written = Math.max(1, Math.floor(N / 20));
const deniedWritten = nsPer(written, () => writeLog.denied(facts));

const raw = createLogger({ name: 'sidecar', destination: devNull() });
const unlimitedWritten = nsPer(written, () => raw.warn({ event: 'denied', ...facts }, 'request denied by policy'));

const boundShort = nsPer(N, () => boundField('/orders/42?x=1&y=abc'));
const boundLong = nsPer(Math.floor(N / 10), () => boundField(LONG));

console.log(
  JSON.stringify({
    iterations: N,
    nsPerCall: {
      allowSuppressed: +allowSuppressed.toFixed(1),
      deniedSuppressed: +deniedSuppressed.toFixed(1),
      deniedWritten: +deniedWritten.toFixed(1),
      unlimitedWritten: +unlimitedWritten.toFixed(1),
      boundShort: +boundShort.toFixed(1),
      boundLong: +boundLong.toFixed(1),
    },
  }),
);
