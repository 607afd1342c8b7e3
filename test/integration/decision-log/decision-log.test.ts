import { randomBytes } from 'node:crypto';
import * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_FIELD_BYTES, truncatedMarker } from '../../../src/common/log/log-limiter.ts';
import { parseExposition } from '../../../src/cli/scrape/parse-exposition.ts';
import { sampledByTraceId } from '../../../src/data-plane/sidecar/decision-log.ts';
import { SIDECAR_ENV } from '../../../src/data-plane/sidecar/sidecar-env.ts';
import { decisionMesh, FRONTEND_ID, grpcClient, h1, h2, h2Get, ORDERS_ID, plain, STRANGER_ID, tcpEcho, until, type DecisionMesh, type LogLine, type OrdersSidecar } from './fixture.ts';

/**
 * Issue 16 item 3 — the decision log, on real sidecars over real mTLS sockets: one
 * `authz_decision` line per decision on every protocol (HTTP/1.1, HTTP/2, gRPC, opaque TCP,
 * Upgrade goes through the same step), each field checked for its value and its absence,
 * sampling, rate limits, the switch, and the traceparent reaching the app untouched.
 */
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN_ID = '00f067aa0ba902b7';
const TRACEPARENT = `00-${TRACE_ID}-${SPAN_ID}-01`;
const RFC3339_MS_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

let mesh: DecisionMesh;

beforeAll(async () => {
  mesh = await decisionMesh();
});

afterAll(async () => {
  await mesh?.close();
});

/** The decision line written for the request that was just sent (the newest one matching `match`). */
async function lineFor(s: OrdersSidecar, match: (l: LogLine) => boolean): Promise<LogLine> {
  await until(() => s.decisions().some(match));
  return s.decisions().filter(match).at(-1)!;
}

function headerValues(rawHeaders: string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]!.toLowerCase() === name) out.push(rawHeaders[i + 1]!);
  return out;
}

function unary(client: ReturnType<typeof grpcClient>, method: 'Get' | 'Drop', md: grpc.Metadata): Promise<grpc.ServiceError | null> {
  return new Promise((resolve) => client[method]({ id: 1 }, md, (err) => resolve(err)));
}

describe('MESHLET_DECISION_LOG=all: one line per decision, every field', () => {
  let s: OrdersSidecar;
  beforeAll(async () => {
    s = await mesh.start({ MESHLET_DECISION_LOG: 'all' });
  });
  afterAll(async () => {
    await s?.stop();
  });

  it('an allowed HTTP/1.1 request: every field, the query stripped, the path normalized', async () => {
    const res = await h1(s.inbound.http, mesh.frontend, '/orders//x/../42?token=secret-query-value', { headers: ['traceparent', TRACEPARENT] });
    expect(res.status).toBe(200);
    const line = await lineFor(s, (l) => l.path === '/orders/42' && l.traceId === TRACE_ID);
    expect(line).toEqual({
      level: 'info',
      time: expect.stringMatching(RFC3339_MS_UTC),
      name: 'sidecar',
      pid: process.pid,
      pod: 'orders-1',
      namespace: 'shop',
      event: 'authz_decision',
      direction: 'inbound',
      decision: 'allow',
      caller: FRONTEND_ID,
      server: ORDERS_ID,
      route: 'list-orders',
      code: 'route-allowed',
      reason: 'caller is authorized by route "list-orders"',
      policyHash: mesh.policyHash,
      protocol: 'http1',
      port: mesh.apps.http,
      method: 'GET',
      path: '/orders/42',
      traceId: TRACE_ID,
      spanId: SPAN_ID,
      msg: 'authorization decision',
    });
    // The query never reaches the log, in any field.
    expect(JSON.stringify(s.lines)).not.toContain('secret-query-value');
  });

  it('time: RFC 3339 UTC with milliseconds, the moment of the decision', async () => {
    const before = Date.now();
    await h1(s.inbound.http, mesh.frontend, '/orders/time-check');
    const line = await lineFor(s, (l) => l.path === '/orders/time-check');
    const t = Date.parse(String(line.time));
    expect(String(line.time)).toMatch(RFC3339_MS_UTC);
    expect(t).toBeGreaterThanOrEqual(before - 1);
    expect(t).toBeLessThanOrEqual(Date.now());
  });

  it('a denied request: warn, decision deny, the route and reason the 403 body gives; the app never sees it', async () => {
    const before = mesh.seen.length;
    const res = await h1(s.inbound.http, mesh.frontend, '/admin/users', { method: 'DELETE' });
    expect(res.status).toBe(403);
    const body = JSON.parse(res.body) as { error: { route: string; reason: string } };
    const line = await lineFor(s, (l) => l.path === '/admin/users');
    expect(line).toMatchObject({ level: 'warn', decision: 'deny', route: body.error.route, reason: body.error.reason, code: 'caller-not-allowed', method: 'DELETE', caller: FRONTEND_ID, protocol: 'http1' });
    expect(line.route).toBe('admin');
    expect(mesh.seen.length).toBe(before);
  });

  it('route: null when the server default decided (no route matched)', async () => {
    const res = await h1(s.inbound.http, mesh.frontend, '/nothing/here');
    expect(res.status).toBe(403);
    const line = await lineFor(s, (l) => l.path === '/nothing/here');
    expect(line).toMatchObject({ decision: 'deny', route: null, code: 'no-route-matched' });
    expect(line.reason).toBe((JSON.parse(res.body) as { error: { reason: string } }).error.reason);
  });

  it('caller: the verified SPIFFE ID; null for a plaintext caller on a PERMISSIVE port', async () => {
    expect((await h1(s.inbound.permissive, mesh.stranger, '/who/mtls')).status).toBe(200);
    expect((await plain(s.inbound.permissive, '/who/plain')).status).toBe(200);
    expect(await lineFor(s, (l) => l.path === '/who/mtls')).toMatchObject({ caller: STRANGER_ID, route: 'public', port: mesh.apps.permissive });
    const plaintext = await lineFor(s, (l) => l.path === '/who/plain');
    expect(plaintext).toMatchObject({ caller: null, decision: 'allow', route: 'public', server: ORDERS_ID });
  });

  it('HTTP/2: protocol h2, the traceparent read and forwarded to the app byte for byte', async () => {
    const session = h2(s.inbound.http, mesh.frontend);
    try {
      const tracestate = 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7';
      const res = await h2Get(session, '/orders/h2?x=1', { traceparent: TRACEPARENT, tracestate });
      expect(res.status).toBe(200);
      const line = await lineFor(s, (l) => l.path === '/orders/h2');
      expect(line).toMatchObject({ protocol: 'h2', decision: 'allow', method: 'GET', traceId: TRACE_ID, spanId: SPAN_ID });
      const seen = mesh.seen.find((r) => r.url === '/orders/h2?x=1')!;
      expect(headerValues(seen.rawHeaders, 'traceparent')).toEqual([TRACEPARENT]);
      expect(headerValues(seen.rawHeaders, 'tracestate')).toEqual([tracestate]);
    } finally {
      session.close();
    }
  });

  it('HTTP/1.1: the traceparent reaches the app unchanged, even when it is one the log ignores', async () => {
    const odd = `00-${TRACE_ID.toUpperCase()}-${SPAN_ID}-01`;
    await h1(s.inbound.http, mesh.frontend, '/orders/tp-valid', { headers: ['TraceParent', TRACEPARENT] });
    await h1(s.inbound.http, mesh.frontend, '/orders/tp-odd', { headers: ['traceparent', odd] });
    expect(headerValues(mesh.seen.find((r) => r.url === '/orders/tp-valid')!.rawHeaders, 'traceparent')).toEqual([TRACEPARENT]);
    expect(headerValues(mesh.seen.find((r) => r.url === '/orders/tp-odd')!.rawHeaders, 'traceparent')).toEqual([odd]);
    expect(await lineFor(s, (l) => l.path === '/orders/tp-valid')).toMatchObject({ traceId: TRACE_ID, spanId: SPAN_ID });
  });

  it('traceId/spanId: absent without a traceparent and for every invalid form (never invented)', async () => {
    const invalid: [string, string[]][] = [
      ['none', []],
      ['uppercase', ['traceparent', `00-${TRACE_ID.toUpperCase()}-${SPAN_ID}-01`]],
      ['zero-trace', ['traceparent', `00-${'0'.repeat(32)}-${SPAN_ID}-01`]],
      ['zero-span', ['traceparent', `00-${TRACE_ID}-${'0'.repeat(16)}-01`]],
      ['version-ff', ['traceparent', `ff-${TRACE_ID}-${SPAN_ID}-01`]],
      ['v00-extra', ['traceparent', `${TRACEPARENT}-extra`]],
      ['short', ['traceparent', `00-${TRACE_ID.slice(1)}-${SPAN_ID}-01`]],
      ['garbage', ['traceparent', 'not-a-trace']],
      ['two-headers', ['traceparent', TRACEPARENT, 'traceparent', `00-${'1'.repeat(32)}-${SPAN_ID}-01`]],
    ];
    for (const [name, headers] of invalid) {
      expect((await h1(s.inbound.http, mesh.frontend, `/orders/invalid-${name}`, { headers })).status).toBe(200);
    }
    for (const [name] of invalid) {
      const line = await lineFor(s, (l) => l.path === `/orders/invalid-${name}`);
      expect(line, name).not.toHaveProperty('traceId');
      expect(line, name).not.toHaveProperty('spanId');
    }
    // A future version is read as version 00 and may carry more after a dash.
    await h1(s.inbound.http, mesh.frontend, '/orders/future', { headers: ['traceparent', `cc-${TRACE_ID}-${SPAN_ID}-01-future`] });
    expect(await lineFor(s, (l) => l.path === '/orders/future')).toMatchObject({ traceId: TRACE_ID, spanId: SPAN_ID });
  });

  it('gRPC: protocol grpc, the method path, POST, trace from the metadata; a denied method too', async () => {
    const client = grpcClient(s.inbound.grpc, mesh.frontend);
    try {
      const md = new grpc.Metadata();
      md.set('traceparent', TRACEPARENT);
      expect(await unary(client, 'Get', md)).toBeNull();
      // The app's gRPC server gets the metadata as the caller sent it.
      expect(mesh.grpcSeen.at(-1)).toMatchObject({ method: 'Get', metadata: { traceparent: TRACEPARENT } });
      const denied = await unary(client, 'Drop', new grpc.Metadata());
      expect(denied?.code).toBe(grpc.status.PERMISSION_DENIED);
    } finally {
      client.close();
    }
    expect(await lineFor(s, (l) => l.path === '/shop.Orders/Get')).toMatchObject({
      decision: 'allow', protocol: 'grpc', method: 'POST', route: 'get-order', port: mesh.apps.grpc, caller: FRONTEND_ID, traceId: TRACE_ID, spanId: SPAN_ID,
    });
    const drop = await lineFor(s, (l) => l.path === '/shop.Orders/Drop');
    expect(drop).toMatchObject({ decision: 'deny', protocol: 'grpc', route: null, code: 'no-route-matched', level: 'warn' });
    expect(drop).not.toHaveProperty('traceId');
  });

  it('an Upgrade (WebSocket) request: decided, and logged, like any HTTP/1.1 request', async () => {
    const socket = tls.connect({ host: '127.0.0.1', port: s.inbound.http, cert: mesh.frontend['tls.crt'], key: mesh.frontend['tls.key'], ca: mesh.frontend['ca.crt'], checkServerIdentity: () => undefined });
    socket.on('error', () => undefined);
    try {
      await new Promise<void>((r) => socket.once('secureConnect', () => r()));
      socket.write(`GET /orders/ws?room=1 HTTP/1.1\r\nHost: orders.shop\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\ntraceparent: ${TRACEPARENT}\r\n\r\n`);
      expect(await lineFor(s, (l) => l.path === '/orders/ws')).toMatchObject({ decision: 'allow', protocol: 'http1', method: 'GET', route: 'list-orders', traceId: TRACE_ID });
    } finally {
      socket.destroy();
    }
  });

  it('opaque TCP: one line per connection, protocol tcp, no method, path or trace', async () => {
    expect(await tcpEcho(s.inbound.tcp, mesh.frontend, 'ledger-hello')).toBe('ledger-hello');
    expect(await tcpEcho(s.inbound.tcp, mesh.stranger, 'nope')).toBe('');
    const allowed = await lineFor(s, (l) => l.protocol === 'tcp' && l.caller === FRONTEND_ID);
    expect(allowed).toMatchObject({ decision: 'allow', route: 'ledger', port: mesh.apps.tcp, server: ORDERS_ID, code: 'route-allowed', policyHash: mesh.policyHash });
    for (const absent of ['method', 'path', 'rawPath', 'traceId', 'spanId']) expect(allowed).not.toHaveProperty(absent);
    const denied = await lineFor(s, (l) => l.protocol === 'tcp' && l.caller === STRANGER_ID);
    expect(denied).toMatchObject({ decision: 'deny', level: 'warn', route: 'ledger', code: 'caller-not-allowed' });
  });

  it('a path refused before the policy: decision refused, the raw path (no query) instead of path, 400', async () => {
    const res = await h1(s.inbound.http, mesh.frontend, '/orders/a%2Fb/c?q=secret-2', { headers: ['traceparent', TRACEPARENT] });
    expect(res.status).toBe(400);
    const line = await lineFor(s, (l) => l.decision === 'refused' && l.rawPath === '/orders/a%2Fb/c');
    expect(line).toMatchObject({ level: 'warn', route: null, code: 'bad-path', reason: expect.stringContaining('encoded slash'), method: 'GET', protocol: 'http1', traceId: TRACE_ID });
    expect(line).not.toHaveProperty('path');
    expect(JSON.stringify(line)).not.toContain('secret-2');
  });

  it('long paths are cut to 256 bytes with the truncation marker (normalized and refused alike)', async () => {
    const long = `/orders/${'a'.repeat(6_000)}`;
    expect((await h1(s.inbound.http, mesh.frontend, long)).status).toBe(200);
    const line = await lineFor(s, (l) => String(l.path).startsWith('/orders/aaaa'));
    expect(line.path).toBe(long.slice(0, MAX_FIELD_BYTES) + truncatedMarker(Buffer.byteLength(long)));
    const bad = `/orders/%2F${'b'.repeat(6_000)}`;
    expect((await h1(s.inbound.http, mesh.frontend, bad)).status).toBe(400);
    const refused = await lineFor(s, (l) => String(l.rawPath).startsWith('/orders/%2Fbbb'));
    expect(refused.rawPath).toBe(bad.slice(0, MAX_FIELD_BYTES) + truncatedMarker(Buffer.byteLength(bad)));
    for (const l of s.lines) expect(Buffer.byteLength(JSON.stringify(l))).toBeLessThan(2_048);
  });

  it('allow lines are not rate limited: 150 allowed requests, 150 lines', async () => {
    const session = h2(s.inbound.http, mesh.frontend);
    try {
      // In waves: more than MESHLET_MAX_IN_FLIGHT_PER_CALLER (128) at once would be refused.
      for (let sent = 0; sent < 150; sent += 50) {
        const statuses = await Promise.all(Array.from({ length: 50 }, (_, i) => h2Get(session, `/orders/many/${sent + i}`).then((r) => r.status)));
        expect(statuses.every((st) => st === 200)).toBe(true);
      }
    } finally {
      session.close();
    }
    await until(() => s.decisions().filter((l) => String(l.path).startsWith('/orders/many/')).length === 150);
    expect(s.lines.filter((l) => l.event === 'log_suppressed')).toEqual([]);
  });
});

describe('the default, MESHLET_DECISION_LOG=deny: denials always (within the rate limit), allows never', () => {
  let s: OrdersSidecar;
  beforeAll(async () => {
    s = await mesh.start();
  });

  it('is the documented default', () => {
    expect(SIDECAR_ENV.decisionLog.default).toBe('deny');
    expect(s.sidecar.config.decisionLog).toBe('deny');
  });

  it('an allowed request writes no line; a denied one does', async () => {
    expect((await h1(s.inbound.http, mesh.frontend, '/orders/quiet')).status).toBe(200);
    expect((await h1(s.inbound.http, mesh.frontend, '/admin/loud')).status).toBe(403);
    await lineFor(s, (l) => l.path === '/admin/loud');
    expect(s.decisions().filter((l) => l.path === '/orders/quiet')).toEqual([]);
    // The decision line replaces the short `denied` line: one line per denial.
    expect(s.lines.filter((l) => l.event === 'denied')).toEqual([]);
  });

  it('a flood of denials: lines within the limiter budget, a log_suppressed count for the rest, metrics count all', async () => {
    const FLOOD = 400;
    const started = performance.now();
    const session = h2(s.inbound.http, mesh.frontend);
    try {
      for (let sent = 0; sent < FLOOD; sent += 50) {
        const statuses = await Promise.all(Array.from({ length: 50 }, (_, i) => h2Get(session, `/admin/flood/${sent + i}`).then((r) => r.status)));
        expect(statuses.every((st) => st === 403)).toBe(true);
      }
    } finally {
      session.close();
    }
    const exposition = parseExposition(await (await fetch(`http://127.0.0.1:${s.admin}/metrics`)).text());
    const denials = exposition.samples.filter((x) => x.name === 'meshlet_authz_decisions_total' && x.labels.result === 'deny' && x.labels.route === 'admin').reduce((a, x) => a + x.value, 0);
    expect(denials).toBe(FLOOD + 1);
    await s.stop(); // writes the last suppression summary
    const elapsed = (performance.now() - started) / 1000;
    const config = s.sidecar.config;
    const written = s.decisions().filter((l) => String(l.path).startsWith('/admin/flood/'));
    const summaries = s.lines.filter((l) => l.event === 'log_suppressed');
    expect(written.length).toBeGreaterThan(0);
    expect(written.length).toBeLessThanOrEqual(config.logLimitBurst + Math.ceil(config.logLimitRate * elapsed));
    const suppressed = summaries.reduce((a, l) => a + ((l.byEvent as Record<string, number>).authz_decision ?? 0), 0);
    expect(suppressed).toBe(FLOOD - written.length);
    expect(summaries.reduce((a, l) => a + (l.suppressed as number), 0)).toBe(FLOOD - written.length);
  });
});

describe('MESHLET_DECISION_LOG=off', () => {
  it('writes no decision line; a denial keeps the short `denied` line', async () => {
    const s = await mesh.start({ MESHLET_DECISION_LOG: 'off' });
    try {
      expect((await h1(s.inbound.http, mesh.frontend, '/orders/off')).status).toBe(200);
      expect((await h1(s.inbound.http, mesh.frontend, '/admin/off')).status).toBe(403);
      expect(await tcpEcho(s.inbound.tcp, mesh.frontend, 'x')).toBe('x');
      expect((await h1(s.inbound.http, mesh.frontend, '/orders/%2F')).status).toBe(400);
      await until(() => s.lines.some((l) => l.event === 'denied'));
      expect(s.lines.filter((l) => l.event === 'denied')).toEqual([expect.objectContaining({ route: 'admin', path: '/admin/off', caller: FRONTEND_ID })]);
    } finally {
      await s.stop();
    }
    expect(s.decisions()).toEqual([]);
  });
});

describe('MESHLET_DECISION_LOG_ALLOW_SAMPLE', () => {
  const traces = Array.from({ length: 60 }, () => randomBytes(16).toString('hex'));

  async function allowedLines(s: OrdersSidecar, prefix: string, withTrace: boolean, n: number): Promise<LogLine[]> {
    const session = h2(s.inbound.http, mesh.frontend);
    try {
      // In waves: more than MESHLET_MAX_IN_FLIGHT_PER_CALLER (128) at once would be refused.
      for (let sent = 0; sent < n; sent += 50) {
        const wave = Array.from({ length: Math.min(50, n - sent) }, (_, k) => sent + k);
        const statuses = await Promise.all(wave.map((i) => h2Get(session, `${prefix}/${i}`, withTrace ? { traceparent: `00-${traces[i]}-${SPAN_ID}-01` } : {}).then((r) => r.status)));
        expect(statuses.every((st) => st === 200)).toBe(true);
      }
    } finally {
      session.close();
    }
    // A denial after them: once its line is in, every earlier line is too (one ordered stream).
    await h1(s.inbound.http, mesh.frontend, `/admin${prefix}`);
    await lineFor(s, (l) => l.path === `/admin${prefix}`);
    return s.decisions().filter((l) => String(l.path).startsWith(`${prefix}/`));
  }

  it('0: no allow line at all (denials still logged)', async () => {
    const s = await mesh.start({ MESHLET_DECISION_LOG: 'all', MESHLET_DECISION_LOG_ALLOW_SAMPLE: '0' });
    try {
      expect(await allowedLines(s, '/orders/s0', true, 20)).toEqual([]);
    } finally {
      await s.stop();
    }
  });

  it('1 (the default): every allow line', async () => {
    expect(SIDECAR_ENV.decisionLogAllowSample.default).toBe('1');
    const s = await mesh.start({ MESHLET_DECISION_LOG: 'all' });
    try {
      expect(await allowedLines(s, '/orders/s1', true, 20)).toHaveLength(20);
    } finally {
      await s.stop();
    }
  });

  it('0.5 with a traceparent: decided by trace id, the same traces on every sidecar (a trace is logged whole)', async () => {
    const [a, b] = await Promise.all([
      mesh.start({ MESHLET_DECISION_LOG: 'all', MESHLET_DECISION_LOG_ALLOW_SAMPLE: '0.5' }),
      mesh.start({ MESHLET_DECISION_LOG: 'all', MESHLET_DECISION_LOG_ALLOW_SAMPLE: '0.5' }),
    ]);
    try {
      const expected = traces.filter((t) => sampledByTraceId(t, 0.5)).sort();
      const fromA = (await allowedLines(a, '/orders/half', true, traces.length)).map((l) => String(l.traceId)).sort();
      const fromB = (await allowedLines(b, '/orders/half', true, traces.length)).map((l) => String(l.traceId)).sort();
      expect(fromA).toEqual(expected);
      expect(fromB).toEqual(expected);
      // Both halves happen with 60 random ids (a failure here has probability ~2^-59).
      expect(expected.length).toBeGreaterThan(0);
      expect(expected.length).toBeLessThan(traces.length);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });

  it('0.5 without a traceparent: at random, about half', async () => {
    const s = await mesh.start({ MESHLET_DECISION_LOG: 'all', MESHLET_DECISION_LOG_ALLOW_SAMPLE: '0.5' });
    try {
      const lines = await allowedLines(s, '/orders/random', false, 200);
      // Binomial(200, 0.5): mean 100, sd ~7; outside 50..150 has probability below 1e-12.
      expect(lines.length).toBeGreaterThan(50);
      expect(lines.length).toBeLessThan(150);
    } finally {
      await s.stop();
    }
  });
});

describe('audit: an allow the policy would deny', () => {
  it('is logged as audit_would_deny even in deny mode; no policy loaded: policyHash null, route null', async () => {
    const s = await mesh.start({ MESHLET_DEFAULT_POLICY: 'audit' }, { policy: false });
    try {
      expect((await h1(s.inbound.http, mesh.frontend, '/anything')).status).toBe(200);
      const line = await lineFor(s, (l) => l.path === '/anything');
      expect(line).toMatchObject({ level: 'warn', decision: 'audit_would_deny', route: null, code: 'no-policy', policyHash: null, caller: FRONTEND_ID });
    } finally {
      await s.stop();
    }
  });
});
