import * as http2 from 'node:http2';
import * as https from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ATTACKER_ID, startOverloadMesh, until, type OverloadMesh } from './support/overload-fixture.ts';

/**
 * Issue 11 item 5 — one caller starves everyone. 300 HTTP/2 streams with never-ending bodies
 * from one allowed caller took all 256 app connections (limits.maxConnectionsPerUpstream) and a
 * second caller waited until the attacker left: the pool's wait queue had no bound and no
 * timeout, and nothing limited what one caller could hold.
 *
 * Now (docs/proxy.md "Timeouts and limits"): one caller — one SPIFFE identity, however many
 * connections — may have at most limits.maxInFlightPerCaller requests in flight to an app port
 * (default half of maxConnectionsPerUpstream); the excess is refused at once with 503
 * MESHLET_CALLER_LIMIT, so a second caller is served from the half the attacker cannot take.
 * Requests and streams on which nothing moves are cancelled after timeouts.streamIdleMs.
 *
 * Real `meshlet sidecar` processes, callers with their own SVIDs over mTLS, an app that counts
 * what it is working on. Limits are small so the attack is cheap; every bound asserted is
 * derived from them, never from time.
 */
interface StreamOutcome {
  status: number;
  code: string | undefined;
  body: string;
}

function h2Connect(mesh: OverloadMesh, who: 'attacker' | 'victim'): http2.ClientHttp2Session {
  const session = http2.connect(`https://127.0.0.1:${mesh.inboundPort}`, mesh.callerTls(who));
  session.on('error', () => {});
  return session;
}

/** A POST whose body starts and never ends; resolves with the answer if the sidecar gives one. */
function neverEndingUpload(session: http2.ClientHttp2Session, path = '/stream'): Promise<StreamOutcome> {
  return new Promise((resolve) => {
    const req = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/octet-stream' });
    req.on('error', () => resolve({ status: 0, code: undefined, body: '' }));
    req.write(Buffer.alloc(1024, 1));
    let status = 0;
    let code: string | undefined;
    let body = '';
    req.on('response', (h) => {
      status = Number(h[':status']);
      code = h['x-meshlet-error'] as string | undefined;
    });
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('end', () => resolve({ status, code, body }));
    req.on('close', () => resolve({ status, code, body }));
  });
}

function httpsGet(mesh: OverloadMesh, who: 'attacker' | 'victim', path: string): Promise<{ status: number; code: string | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port: mesh.inboundPort, path, agent: false, ...mesh.callerTls(who) }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, code: res.headers['x-meshlet-error'] as string | undefined, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('one caller starves everyone (issue 11 item 5)', () => {
  const MAX_CONNECTIONS = 8;
  // The documented default: half of MESHLET_MAX_CONNECTIONS_PER_UPSTREAM.
  const SHARE = MAX_CONNECTIONS / 2;
  const ATTACK_STREAMS = 30;
  let mesh: OverloadMesh;
  let attacker: http2.ClientHttp2Session;
  const outcomes: StreamOutcome[] = [];
  const pending: Promise<StreamOutcome>[] = [];

  beforeAll(async () => {
    mesh = await startOverloadMesh({ MESHLET_MAX_CONNECTIONS_PER_UPSTREAM: String(MAX_CONNECTIONS) });
    attacker = h2Connect(mesh, 'attacker');
  });
  afterAll(async () => {
    attacker?.destroy();
    await mesh?.close();
  });

  it(`an attacker's ${ATTACK_STREAMS} never-ending streams hold only its share of the app; the excess gets 503 MESHLET_CALLER_LIMIT at once`, async () => {
    for (let i = 0; i < ATTACK_STREAMS; i++) pending.push(neverEndingUpload(attacker).then((o) => (outcomes.push(o), o)));
    await until(() => outcomes.length === ATTACK_STREAMS - SHARE && mesh.app.open === SHARE, `${SHARE} streams at the app and ${ATTACK_STREAMS - SHARE} refused`);
    expect(mesh.app.open).toBe(SHARE);
    expect(mesh.app.connections).toBeLessThanOrEqual(SHARE);
    for (const o of outcomes) {
      expect(o.status).toBe(503);
      expect(o.code).toBe('MESHLET_CALLER_LIMIT');
      expect(JSON.parse(o.body).error.message).toBe(`${ATTACKER_ID} already has ${SHARE} requests in flight to app port ${mesh.appPort} (limits.maxInFlightPerCaller)`);
    }
    expect(await mesh.refusals('MESHLET_CALLER_LIMIT')).toBe(ATTACK_STREAMS - SHARE);
  });

  it('a second allowed caller is served while the attack holds (200 from the app, not a queue)', async () => {
    const res = await httpsGet(mesh, 'victim', '/orders/1');
    expect(res).toEqual({ status: 200, code: undefined, body: 'ok' });
    expect(mesh.app.open).toBe(SHARE);
  });

  it('the share is per identity, not per connection: a new connection of the same caller is refused too', async () => {
    const second = h2Connect(mesh, 'attacker');
    try {
      const o = await neverEndingUpload(second);
      expect([o.status, o.code]).toEqual([503, 'MESHLET_CALLER_LIMIT']);
      const plain = await httpsGet(mesh, 'attacker', '/orders/1');
      expect([plain.status, plain.code]).toEqual([503, 'MESHLET_CALLER_LIMIT']);
    } finally {
      second.destroy();
    }
    expect(mesh.app.open).toBe(SHARE);
  });

  it('when the attacker leaves, the app is freed and its share is back', async () => {
    attacker.destroy();
    await until(() => mesh.app.open === 0, 'the app to be freed of the attacker\'s streams');
    const res = await httpsGet(mesh, 'attacker', '/orders/1');
    expect([res.status, res.body]).toEqual([200, 'ok']);
  });
});

describe('requests and streams on which nothing moves are cancelled (timeouts.streamIdleMs)', () => {
  let mesh: OverloadMesh;

  beforeAll(async () => {
    mesh = await startOverloadMesh({ MESHLET_STREAM_IDLE_TIMEOUT: '1s', MESHLET_MAX_CONNECTIONS_PER_UPSTREAM: '8' });
  });
  afterAll(async () => {
    await mesh?.close();
  });

  it('a silent never-ending HTTP/2 upload: 408 MESHLET_REQUEST_TIMEOUT, and the app is freed', async () => {
    const session = h2Connect(mesh, 'attacker');
    try {
      const outcomes = await Promise.all([neverEndingUpload(session), neverEndingUpload(session), neverEndingUpload(session)]);
      for (const o of outcomes) expect([o.status, o.code]).toEqual([408, 'MESHLET_REQUEST_TIMEOUT']);
      await until(() => mesh.app.open === 0, 'the app to be freed');
      expect(await mesh.refusals('MESHLET_REQUEST_TIMEOUT')).toBe(3);
    } finally {
      session.destroy();
    }
  });

  it('an app that never answers: 504 MESHLET_UPSTREAM_TIMEOUT', async () => {
    const res = await httpsGet(mesh, 'victim', '/hold');
    expect([res.status, res.code]).toEqual([504, 'MESHLET_UPSTREAM_TIMEOUT']);
    expect(await mesh.refusals('MESHLET_UPSTREAM_TIMEOUT')).toBe(1);
    mesh.app.release();
  });

  it('a stream that keeps moving bytes is never cut, however long it lasts (a streaming upload of 40 chunks)', async () => {
    const session = h2Connect(mesh, 'victim');
    try {
      const done = new Promise<StreamOutcome>((resolve, reject) => {
        const req = session.request({ ':method': 'POST', ':path': '/upload', 'content-type': 'application/octet-stream' });
        let status = 0;
        let body = '';
        req.on('response', (h) => (status = Number(h[':status'])));
        req.setEncoding('utf8');
        req.on('data', (d: string) => (body += d));
        req.on('end', () => resolve({ status, code: undefined, body }));
        req.on('error', reject);
        let sent = 0;
        const tick = setInterval(() => {
          req.write(Buffer.alloc(512, 2));
          if (++sent === 40) {
            clearInterval(tick);
            req.end();
          }
        }, 50);
      });
      expect(await done).toEqual({ status: 200, code: undefined, body: 'ok' });
    } finally {
      session.destroy();
    }
  });
});

describe('the wait for an app connection is bounded and fails fast (one caller allowed everything)', () => {
  let mesh: OverloadMesh;

  beforeAll(async () => {
    mesh = await startOverloadMesh({
      MESHLET_MAX_CONNECTIONS_PER_UPSTREAM: '2',
      MESHLET_MAX_IN_FLIGHT_PER_CALLER: '100',
      MESHLET_MAX_PENDING_PER_UPSTREAM: '1',
      MESHLET_UPSTREAM_QUEUE_TIMEOUT: '300ms',
    });
  });
  afterAll(async () => {
    await mesh?.close();
  });

  it('connections all busy: one request waits and times out (503 MESHLET_UPSTREAM_QUEUE_TIMEOUT), the next is refused at once (503 MESHLET_UPSTREAM_BUSY)', async () => {
    const session = h2Connect(mesh, 'attacker');
    try {
      void neverEndingUpload(session);
      void neverEndingUpload(session);
      await until(() => mesh.app.open === 2, 'both app connections busy');
      // Same connection, so the sidecar takes them in this order: the third waits, the fourth is refused.
      const waiting = neverEndingUpload(session);
      const refused = await neverEndingUpload(session);
      expect([refused.status, refused.code]).toEqual([503, 'MESHLET_UPSTREAM_BUSY']);
      const timedOut = await waiting;
      expect([timedOut.status, timedOut.code]).toEqual([503, 'MESHLET_UPSTREAM_QUEUE_TIMEOUT']);
      expect(mesh.app.requests).toBe(2);
      expect(await mesh.refusals('MESHLET_UPSTREAM_BUSY')).toBe(1);
      expect(await mesh.refusals('MESHLET_UPSTREAM_QUEUE_TIMEOUT')).toBe(1);
    } finally {
      session.destroy();
    }
  });
});
