/**
 * Micro-benchmark of the decision log on the request path: `node src/data-plane/sidecar/decision-log.bench.ts [N]`.
 * @bench-quick-args 20000
 * Prints ns per request for the inbound deciding step (AuthorizeStep.decide(): path
 * normalization, the policy's decide() on a small compiled policy, and the decision log's hook)
 * of an allowed HTTP/1.1 request with 12 header fields and a traceparent:
 *  - off:          MESHLET_DECISION_LOG=off (no hook at all)
 *  - deny:         the default: an allowed request is not logged (one flag test)
 *  - all1Sync:     all, sample 1: every allow is a line (pino, sync write to /dev/null: includes the syscall)
 *  - all1Cpu:      all, sample 1: the same line to a destination that drops it: the CPU cost of
 *                  making the line, which is what the event loop pays (the sidecar's stderr
 *                  destination is asynchronous: its writes are batched off the request path)
 *  - all001:       all, sample 0.01: the traceparent is parsed and 99% are dropped by trace id
 * and for a denied request:
 *  - denySuppressed: a denial during a flood (the limiter refuses the line: counted, not written)
 * `…Delta` figures are the cost over `off`.
 */
import type * as http from 'node:http';
import { pino } from 'pino';
import { createLogger } from '../../common/log/logger.ts';
import { compilePolicy } from '../policy/compile.ts';
import { decide } from '../policy/decide.ts';
import { normalizePath } from '../policy/normalize-path.ts';
import { parsePolicy } from '../policy/parse.ts';
import type { TrackedConnection } from '../proxy/connection-registry.ts';
import { AuthorizeStep } from '../proxy/inbound/authorize.ts';
import { readHttp1Head } from '../proxy/pipeline/request-head.ts';
import type { Destination } from '../proxy/pipeline/request-pipeline.ts';
import type { AuthorizationDecision, NormalizedPath, RequestFacts } from '../proxy/request-authorizer.ts';
import type { ConnectionFacts } from '../proxy/tcp/connection-authorizer.ts';
import { DecisionLog, withDecisionLog, type SidecarAuthorizer } from './decision-log.ts';
import { RequestLog } from './request-log.ts';

const N = Number(process.argv[2] ?? 1_000_000);
const FRONTEND = 'spiffe://cluster.local/ns/web/sa/frontend';

function nsPer(n: number, fn: (i: number) => void): number {
  for (let i = 0; i < Math.min(n, 50_000); i++) fn(i); // warm up (JIT)
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn(i);
  return Number(process.hrtime.bigint() - start) / n;
}

const parsed = parsePolicy(`apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
spec:
  servers:
    - name: orders
      selector: { serviceAccount: orders }
      default: deny
      ports: [{ port: 8080, protocol: http }]
      routes:
        - { name: list-orders, methods: [GET], path: { prefix: /orders }, callers: [{ spiffeId: "${FRONTEND}" }] }
        - { name: admin, path: { prefix: /admin }, callers: [{ spiffeId: "spiffe://cluster.local/ns/ops/sa/operator" }] }
`);
if (!parsed.ok) throw new Error('bench policy does not parse');
const compiled = compilePolicy(parsed.policy, { self: { namespace: 'shop', serviceAccount: 'orders', labels: {}, trustDomain: 'cluster.local' }, meshDefault: 'deny' });

const authorizer: SidecarAuthorizer = {
  authorize: (facts: RequestFacts | ConnectionFacts): AuthorizationDecision => decide(compiled, facts),
  normalize: (rawPath: string): NormalizedPath => {
    const n = normalizePath(rawPath);
    return n.ok ? { ok: true, path: n.path } : { ok: false, reason: n.reason };
  },
};

function head(path: string): ReturnType<typeof readHttp1Head> {
  const rawHeaders = [
    'Host', 'orders.shop:80', 'User-Agent', 'bench/1.0', 'Accept', 'application/json', 'Accept-Encoding', 'gzip, deflate',
    'X-Request-Id', '0d2c4c4e-6a8f-4a4f-9f3e-0c2b8e1f6a77', 'traceparent', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    'tracestate', 'congo=t61rcWkgMzE', 'Cookie', 'session=abc', 'Authorization', 'Bearer x', 'Content-Type', 'application/json',
    'X-Forwarded-For', '10.0.0.1', 'Baggage', 'userId=alice',
  ];
  return readHttp1Head({ rawHeaders, method: 'GET', url: path, httpVersionMinor: 1 } as unknown as http.IncomingMessage, 100);
}

const allowed = head('/orders/42?page=2');
const denied = head('/admin/users');
const conn = { peerIdentity: FRONTEND } as TrackedConnection;
const destination = {} as Destination;
const nowhere = createLogger({ name: 'sidecar', destination: pino.destination({ dest: '/dev/null', sync: true }) });
let dropped = 0;
const discard = createLogger({ name: 'sidecar', destination: { write: (line: string) => void (dropped += line.length) } });

function step(mode: 'off' | 'deny' | 'all', sample = 1, logger = nowhere, limits?: { linesPerSecond: number; burst: number }): AuthorizeStep {
  const requestLog = new RequestLog(logger, { ...(limits ? { limits } : {}), summaryIntervalMs: 3_600_000 });
  const log = mode === 'off' ? undefined : new DecisionLog(logger, { mode, allowSample: sample, limiter: requestLog.limiter, server: () => 'spiffe://cluster.local/ns/shop/sa/orders', policyHash: () => 'a'.repeat(64) });
  return new AuthorizeStep(8080, withDecisionLog(authorizer, log), authorizer, destination);
}

const off = step('off');
const deny = step('deny');
const all1Sync = step('all', 1);
const all1Cpu = step('all', 1, discard);
const all001 = step('all', 0.01);
const flooded = step('deny', 1, nowhere, { linesPerSecond: 1e-9, burst: 1 });

const lines = Math.max(1, Math.floor(N / 10));
const figures = {
  off: nsPer(N, () => off.decide(allowed, conn)),
  deny: nsPer(N, () => deny.decide(allowed, conn)),
  all1Sync: nsPer(lines, () => all1Sync.decide(allowed, conn)),
  all1Cpu: nsPer(N, () => all1Cpu.decide(allowed, conn)),
  all001: nsPer(N, () => all001.decide(allowed, conn)),
  denyOff: nsPer(N, () => off.decide(denied, conn)),
  denySuppressed: nsPer(N, () => flooded.decide(denied, conn)),
};
if (dropped === 0) throw new Error('no decision line was made');

const round = (x: number) => +x.toFixed(1);
console.log(
  JSON.stringify({
    iterations: N,
    nsPerRequest: Object.fromEntries(Object.entries(figures).map(([k, v]) => [k, round(v)])),
    nsOverOff: {
      denyDelta: round(figures.deny - figures.off),
      all1SyncDelta: round(figures.all1Sync - figures.off),
      all1CpuDelta: round(figures.all1Cpu - figures.off),
      all001Delta: round(figures.all001 - figures.off),
      denySuppressedDelta: round(figures.denySuppressed - figures.denyOff),
    },
  }),
);
