import { describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { createLogger, LogConfigError } from '../../../src/common/log/logger.ts';
import { RequestLog } from '../../../src/data-plane/sidecar/request-log.ts';

/** A destination that keeps every JSON line pino writes. */
function lines() {
  const out: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l !== '') out.push(JSON.parse(l));
      cb();
    },
  });
  return { out, stream };
}

const CALLER = 'spiffe://cluster.local/ns/web/sa/frontend';

describe('logger', () => {
  it('writes JSON lines with the level name, the process name, an ISO time and base fields', () => {
    const { out, stream } = lines();
    const log = createLogger({ name: 'sidecar', level: 'info', base: { pod: 'orders-1' }, destination: stream });
    log.info({ port: 8080 }, 'listening');
    log.debug('hidden at info');
    expect(out).toHaveLength(1);
    expect(out[0]).toMatchObject({ level: 'info', name: 'sidecar', pod: 'orders-1', port: 8080, msg: 'listening' });
    expect(new Date(out[0]!.time as string).toISOString()).toBe(out[0]!.time);
  });

  it('takes the level from configuration and refuses an unknown one with a coded error', () => {
    const { out, stream } = lines();
    createLogger({ name: 'sidecar', level: 'debug', destination: stream }).debug('shown');
    expect(out).toHaveLength(1);
    let caught: unknown;
    try {
      createLogger({ name: 'sidecar', level: 'verbose', destination: stream });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(LogConfigError);
    expect((caught as LogConfigError).code).toBe('LOG_BAD_LEVEL');
    expect((caught as Error).message).toBe('log level must be one of fatal, error, warn, info, debug, trace; got "verbose"');
  });
});

describe('request log', () => {
  it('logs every denial with caller, route and reason', () => {
    const { out, stream } = lines();
    const log = new RequestLog(createLogger({ name: 'sidecar', destination: stream }));
    log.denied({ direction: 'inbound', caller: CALLER, route: 'admin', reason: 'caller not allowed on route admin', method: 'POST', path: '/admin', port: 8080 });
    log.denied({ direction: 'inbound', caller: null, route: null, reason: 'no route matched; default deny' });
    expect(out).toHaveLength(2);
    expect(out[0]).toMatchObject({ level: 'warn', event: 'denied', caller: CALLER, route: 'admin', reason: 'caller not allowed on route admin', method: 'POST', path: '/admin', port: 8080 });
    expect(out[1]).toMatchObject({ event: 'denied', caller: 'unauthenticated', route: null, reason: 'no route matched; default deny' });
  });

  it('writes no access lines unless enabled, then one per request', () => {
    const facts = { direction: 'inbound' as const, peer: CALLER, route: 'list-orders', method: 'GET', path: '/orders', status: 200, authz: 'allow', durationSeconds: 0.0012345, requestBytes: 0, responseBytes: 17 };
    const off = lines();
    new RequestLog(createLogger({ name: 'sidecar', destination: off.stream })).access(facts);
    expect(off.out).toHaveLength(0);
    const on = lines();
    new RequestLog(createLogger({ name: 'sidecar', destination: on.stream }), { accessLog: true }).access(facts);
    expect(on.out).toHaveLength(1);
    expect(on.out[0]).toMatchObject({ level: 'info', event: 'access', peer: CALLER, route: 'list-orders', method: 'GET', path: '/orders', status: 200, durationMs: 1.235, responseBytes: 17 });
  });
});
