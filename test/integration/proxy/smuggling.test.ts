import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tls from 'node:tls';
import { IDS } from './support/mesh-fixture.ts';
import { startMeshPair, type MeshPair } from './support/mesh-pair.ts';
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
};

describe('request smuggling and malformed heads are refused with 400 and a closed connection', () => {
  let mesh: MeshPair;
  let clientTls: tls.ConnectionOptions;
  beforeAll(async () => {
    mesh = await startMeshPair();
    const f = mesh.pki.svids.frontend;
    clientTls = { cert: f.certChainPem, key: f.privateKeyPem, ca: f.bundlePem, minVersion: 'TLSv1.3', checkServerIdentity: () => undefined };
    expect(f.id).toBe(IDS.frontend);
  });
  afterAll(async () => {
    await mesh.close();
  });

  for (const [name, head] of Object.entries(CASES)) {
    it(`inbound: ${name}`, async () => {
      const before = mesh.appSaw.length;
      const out = await rawExchange(mesh.inboundPort, head, clientTls);
      expect(out.response).toMatch(/^HTTP\/1\.1 400 /);
      expect(out.response).toMatch(/\r\nx-meshlet-error: MESHLET_BAD_REQUEST\r\n/);
      expect(out.response).toMatch(/\r\nconnection: close\r\n/);
      expect(out.closed).toBe(true);
      expect(out.response.match(/HTTP\/1\.1 /g)).toHaveLength(1);
      expect(mesh.appSaw.length).toBe(before);
    });
  }

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

  it('counts every refusal', () => {
    const badRequests = mesh.refused.filter((r) => r.code === 'MESHLET_BAD_REQUEST').length;
    expect(badRequests).toBeGreaterThanOrEqual(Object.keys(CASES).length);
  });
});
