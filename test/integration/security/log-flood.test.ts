import * as http2 from 'node:http2';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSidecarConfig, SIDECAR_ENV } from '../../../src/data-plane/sidecar/sidecar-env.ts';
import { createLogger } from '../../../src/common/log/logger.ts';
import { MAX_FIELD_BYTES, TOTAL_FACTOR, truncatedMarker } from '../../../src/common/log/log-limiter.ts';
import { parseExposition } from '../../../src/cli/scrape/parse-exposition.ts';
import { Sidecar } from '../../../src/data-plane/sidecar/sidecar.ts';
import { FRONTEND_ID, meshOfTwo, svidFiles, type MeshOfTwo } from '../sidecar/mesh-of-two.ts';

/**
 * Issue 11 item 9 — log flooding. An authenticated caller sent 3,000 denied HTTP/2 requests
 * on one connection and the sidecar wrote 21 MB of logs in 0.8 s, paths up to 8 KB a line.
 * Here a real sidecar (in-process, its log captured) with the DEFAULT limits gets the same
 * flood over real mTLS + HTTP/2: the denial lines stay within the limiter's budget, a
 * log_suppressed line accounts for every line left out, the metrics count every denial, and
 * a long path is cut with the marker.
 */
const FLOOD = 3_000;
const WAVE = 50;
const LONG_PATH = `/admin/${'a'.repeat(8_000)}`;

let mesh: MeshOfTwo;
let orders: Sidecar;
const lines: string[] = [];
let logBytes = 0;
const logStream = new Writable({
  write(chunk: Buffer, _enc, cb) {
    logBytes += chunk.length;
    lines.push(...String(chunk).split('\n').filter(Boolean));
    cb();
  },
});

function get(session: http2.ClientHttp2Session, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':path': path, ':method': 'GET', ':authority': 'orders.shop' });
    let status = 0;
    req.on('response', (h) => (status = Number(h[':status'])));
    req.on('data', () => undefined);
    req.on('end', () => resolve(status));
    req.on('error', reject);
  });
}

async function scrape(): Promise<ReturnType<typeof parseExposition>> {
  return parseExposition(await (await fetch(`http://127.0.0.1:${mesh.ports.ordersAdmin}/metrics`)).text());
}

function sum(exposition: ReturnType<typeof parseExposition>, name: string, labels: Record<string, string>): number {
  return exposition.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);
}

beforeAll(async () => {
  mesh = await meshOfTwo();
  orders = new Sidecar(readSidecarConfig(mesh.ordersEnv), { logger: createLogger({ name: 'sidecar', level: 'info', destination: logStream }) });
  await orders.start();
});

afterAll(async () => {
  await orders?.stop();
  await mesh?.close();
});

describe('log flood (issue 11 item 9): denial logs are rate limited and bounded, metrics count every denial', () => {
  it('3,000 denied HTTP/2 requests on one mTLS connection: lines within the budget, exact suppression count, every denial counted', async () => {
    const config = orders.config;
    // The defaults documented in the README are what this sidecar runs with.
    expect(mesh.ordersEnv[SIDECAR_ENV.logLimitRate.name]).toBeUndefined();
    expect([config.logLimitRate, config.logLimitBurst]).toEqual([Number(SIDECAR_ENV.logLimitRate.default), Number(SIDECAR_ENV.logLimitBurst.default)]);

    const svid = await svidFiles(mesh.ca, FRONTEND_ID);
    const started = performance.now();
    const session = http2.connect(`https://127.0.0.1:${mesh.ports.ordersInbound}`, {
      cert: svid['tls.crt'],
      key: svid['tls.key'],
      ca: svid['ca.crt'],
      // X.509-SVIDs name a SPIFFE ID (URI SAN), not a host name.
      checkServerIdentity: () => undefined,
    });
    const statuses: number[] = [];
    try {
      // The long path first: inside the burst, so its line is written and can be checked.
      statuses.push(await get(session, LONG_PATH));
      for (let sent = 0; sent < FLOOD; sent += WAVE) {
        statuses.push(...(await Promise.all(Array.from({ length: WAVE }, (_, i) => get(session, `/admin/users/${sent + i}`)))));
      }
    } finally {
      session.close();
    }
    const total = FLOOD + 1;
    expect(statuses.filter((s) => s === 403)).toHaveLength(total);

    const metrics = await scrape();
    expect(sum(metrics, 'meshlet_authz_decisions_total', { route: 'admin', caller: FRONTEND_ID, result: 'deny' })).toBe(total);
    expect(sum(metrics, 'meshlet_proxy_refusals_total', { direction: 'inbound', code: 'MESHLET_DENIED' })).toBe(total);

    // stop() writes the last suppression summary.
    await orders.stop();
    const elapsedSeconds = (performance.now() - started) / 1000;
    const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    // A denial's line is its decision-log line (MESHLET_DECISION_LOG, default deny: docs/decision-log.md).
    const denied = parsed.filter((l) => l.event === 'authz_decision' && l.decision === 'deny');
    const summaries = parsed.filter((l) => l.event === 'log_suppressed');

    // Token bucket: at most `burst` at once, then `rate` per second, for the one key (event, reason).
    const budget = config.logLimitBurst + Math.ceil(config.logLimitRate * elapsedSeconds);
    expect(denied.length).toBeGreaterThan(0);
    expect(denied.length).toBeLessThanOrEqual(budget);
    expect(denied.length).toBeLessThan(total);
    // At most one summary a second, plus the one stop() writes.
    expect(summaries.length).toBeGreaterThan(0);
    expect(summaries.length).toBeLessThanOrEqual(Math.ceil(elapsedSeconds) + 1);
    // Exact: every denial is either a line or counted in a summary.
    const suppressed = summaries.reduce((a, s) => a + (s.suppressed as number), 0);
    expect(suppressed).toBe(total - denied.length);
    expect(summaries.reduce((a, s) => a + ((s.byEvent as Record<string, number>).authz_decision ?? 0), 0)).toBe(total - denied.length);
    expect(summaries[0]).toMatchObject({ level: 'warn', linesPerSecond: config.logLimitRate, burst: config.logLimitBurst });
    expect(String(summaries[0]!.msg)).toMatch(/^\d+ log lines? suppressed by the log rate limit; metrics count every event$/);

    // The whole flood cost a few lines, each bounded (no 8 KB paths).
    for (const l of lines) expect(Buffer.byteLength(l)).toBeLessThan(2 * 1024);
    expect(logBytes).toBeLessThan((budget * TOTAL_FACTOR + summaries.length + 20) * 2 * 1024);
  });

  it('a long path is logged as its first 256 bytes and a truncation marker', () => {
    const line = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.event === 'authz_decision' && String(l.path).startsWith('/admin/aaaa'));
    expect(line).toBeDefined();
    expect(line!.path).toBe(LONG_PATH.slice(0, MAX_FIELD_BYTES) + truncatedMarker(Buffer.byteLength(LONG_PATH)));
    expect(line).toMatchObject({ caller: FRONTEND_ID, route: 'admin', code: 'caller-not-allowed', method: 'GET' });
  });
});
