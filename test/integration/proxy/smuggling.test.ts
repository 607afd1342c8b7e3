import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tls from 'node:tls';
import { IDS } from './support/mesh-fixture.ts';
import { echoApp, ORDERS_AUTHORITY, startMeshPair, type MeshPair } from './support/mesh-pair.ts';
import { rawExchange } from './support/raw-exchange.ts';

// Each case is a request head a front-end and a back-end could frame differently (request
// smuggling, CWE-444 / RFC 9112 §6.3, §5.2). The inbound sidecar must answer 400 and close,
// and the app must never see a byte of it.
const CASES: Record<string, string> = {
  'Content-Length with Transfer-Encoding': 'POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n',
  'two conflicting Content-Length fields': 'POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\nhello',
  'a Content-Length list': 'POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 40\r\n\r\nhello',
  'a Content-Length that is not a number': 'POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello',
  'obsolete line folding': 'GET /a HTTP/1.1\r\nHost: x\r\nX-Folded: one\r\n two\r\n\r\n',
  'a NUL byte in a header value': 'GET /a HTTP/1.1\r\nHost: x\r\nX-Bad: a\x00b\r\n\r\n',
  'a bare CR in a header value': 'GET /a HTTP/1.1\r\nHost: x\r\nX-Bad: a\rb\r\n\r\n',
  'whitespace between field name and colon': 'GET /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n',
  'a Transfer-Encoding that does not end in chunked': 'POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n',
  'an invalid character in a field name': 'GET /a HTTP/1.1\r\nHost: x\r\nX(Bad): 1\r\n\r\n',
  'a bad chunk size': 'POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n',
  'a missing Host in HTTP/1.1': 'GET /a HTTP/1.1\r\nX-No-Host: 1\r\n\r\n',
  // Issue 11 item 4 (test/integration/security/smuggling-leftovers-rfc9112.test.ts has the
  // pipelining and HTTP/2 cases): node's parser hands these heads over before (or without)
  // refusing them; the proxy refuses them before anything is forwarded.
  'a Transfer-Encoding that is not a coding (xchunked)': 'POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n',
  'a Transfer-Encoding other than chunked (gzip)': 'POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nhello',
  'a Transfer-Encoding with a coding before chunked': 'POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n',
  'a Transfer-Encoding in an HTTP/1.0 request': 'POST /a HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
  'two Host lines': 'GET /a HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n',
  'a lower-case method': 'delete /a HTTP/1.1\r\nHost: x\r\n\r\n',
};

describe('request smuggling and malformed heads are refused with 400 and a closed connection', () => {
  let mesh: MeshPair;
  let clientTls: tls.ConnectionOptions;
  // Request targets as heads ARRIVE at the app (appSaw records only requests whose body
  // completed). Each case is sent to a path of its own, so a head reaching the app late is
  // still charged to the case that sent it.
  const heads: string[] = [];
  beforeAll(async () => {
    mesh = await startMeshPair();
    const echo = echoApp(mesh.appSaw);
    mesh.setHandler((req, res) => {
      heads.push(req.url!);
      echo(req, res);
    });
    const f = mesh.pki.svids.frontend;
    clientTls = { cert: f.certChainPem, key: f.privateKeyPem, ca: f.bundlePem, minVersion: 'TLSv1.3', checkServerIdentity: () => undefined };
    expect(f.id).toBe(IDS.frontend);
    // Warm pools (outbound -> inbound -> app): a head the proxy forwards is then written at once,
    // so a head that should have been refused reliably reaches the app instead of racing the close.
    const warm = await rawExchange(mesh.outboundPort, `GET /warm HTTP/1.1\r\nHost: ${ORDERS_AUTHORITY}\r\nConnection: close\r\n\r\n`);
    expect(warm.response).toMatch(/^HTTP\/1\.1 200 /);
  });
  afterAll(async () => {
    await mesh.close();
  });

  for (const [index, [name, raw]] of Object.entries(CASES).entries()) {
    const path = `/case-${index}`;
    const head = raw.replace(' /a ', ` ${path} `);
    it(`inbound: ${name}`, async () => {
      const before = mesh.appSaw.length;
      const out = await rawExchange(mesh.inboundPort, head, clientTls);
      expect(out.response).toMatch(/^HTTP\/1\.1 400 /);
      expect(out.response).toMatch(/\r\nx-meshlet-error: MESHLET_BAD_REQUEST\r\n/);
      expect(out.response).toMatch(/\r\nconnection: close\r\n/);
      expect(out.closed).toBe(true);
      expect(out.response.match(/HTTP\/1\.1 /g)).toHaveLength(1);
      expect(mesh.appSaw.length).toBe(before);
      // A bad chunk size is a BODY error: the head was valid and authorized and is forwarded as
      // it arrives (bodies stream); the error then aborts the exchange with the app, which never
      // gets a complete body nor a byte past the error (appSaw above).
      if (name !== 'a bad chunk size') expect(heads).not.toContain(path);
    });

    // Outbound, the bad chunk size's valid head is answered first (502: Host x is no
    // destination); the body error then closes the connection.
    if (name === 'a bad chunk size') continue;
    it(`outbound: ${name}`, async () => {
      const out = await rawExchange(mesh.outboundPort, head);
      expect(out.response).toMatch(/^HTTP\/1\.1 400 /);
      expect(out.response).toMatch(/\r\nx-meshlet-error: MESHLET_BAD_REQUEST\r\n/);
      expect(out.closed).toBe(true);
      expect(out.response.match(/HTTP\/1\.1 /g)).toHaveLength(1);
      expect(heads).not.toContain(path);
    });
  }

  it('no refused head reached the app later either (a forwarded head can arrive after the client saw its 400)', () => {
    const refusedPaths = Object.keys(CASES).flatMap((name, index) => (name === 'a bad chunk size' ? [] : [`/case-${index}`]));
    expect(heads.filter((url) => refusedPaths.includes(url))).toEqual([]);
  });

  it('outbound refuses the same way (the app side is parsed as strictly)', async () => {
    const out = await rawExchange(mesh.outboundPort, CASES['Content-Length with Transfer-Encoding']!);
    expect(out.response).toMatch(/^HTTP\/1\.1 400 /);
    expect(out.closed).toBe(true);
  });

  it('a request head over limits.maxHeaderBytes gets 431 and a close', async () => {
    const out = await rawExchange(mesh.inboundPort, `GET /a HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, clientTls);
    expect(out.response).toMatch(/^HTTP\/1\.1 431 /);
    expect(out.response).toMatch(/x-meshlet-error: MESHLET_HEADERS_TOO_LARGE/);
    expect(out.closed).toBe(true);
  });

  // node's parser refuses far too many fields itself; one field over the limit is caught by the proxy.
  for (const [fields, code] of [[101, 'MESHLET_TOO_MANY_HEADERS'], [150, 'MESHLET_HEADERS_TOO_LARGE']] as const) {
    it(`${fields} header fields (limits.maxHeaderCount is 100) get 431 ${code} and a close`, async () => {
      let head = 'GET /a HTTP/1.1\r\nHost: x\r\n';
      for (let i = 1; i < fields; i++) head += `X-H${i}: ${i}\r\n`;
      const before = mesh.appSaw.length;
      const out = await rawExchange(mesh.inboundPort, head + '\r\n', clientTls);
      expect(out.response).toMatch(/^HTTP\/1\.1 431 /);
      expect(out.response).toContain(`x-meshlet-error: ${code}`);
      expect(out.closed).toBe(true);
      expect(mesh.appSaw.length).toBe(before);
    });
  }

  it('a request pipelined behind a 431 (limits.maxHeaderCount) is never processed', async () => {
    let head = 'GET /pipelined-431 HTTP/1.1\r\nHost: x\r\n';
    for (let i = 1; i < 101; i++) head += `X-H${i}: ${i}\r\n`;
    const out = await rawExchange(mesh.inboundPort, `${head}\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n`, clientTls);
    expect(out.response).toMatch(/^HTTP\/1\.1 431 /);
    expect(out.response.match(/HTTP\/1\.1 /g)).toHaveLength(1);
    expect(out.closed).toBe(true);
    expect(heads).not.toContain('/pipelined-431');
    expect(heads).not.toContain('/smuggled');
  });

  it('counts every refusal', () => {
    const badRequests = mesh.refused.filter((r) => r.code === 'MESHLET_BAD_REQUEST').length;
    expect(badRequests).toBeGreaterThanOrEqual(Object.keys(CASES).length);
  });
});
