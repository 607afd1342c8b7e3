import * as http2 from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeServer, listen, waitFor } from '../proxy/support/mesh-fixture.ts';
import { startMeshPair, type MeshPair } from '../proxy/support/mesh-pair.ts';

/**
 * The HTTP/2 next hop (an h2c/gRPC app behind a `grpc` port) under the limits of issue 11
 * item 5: a caller's streams count against limits.maxInFlightPerCaller like its HTTP/1.1
 * exchanges (503 / gRPC RESOURCE_EXHAUSTED MESHLET_CALLER_LIMIT past it, its share back when
 * its streams close), and a stream on which nothing moves for timeouts.streamIdleMs gets a
 * trailers-only DEADLINE_EXCEEDED (MESHLET_UPSTREAM_TIMEOUT) and is cancelled at the app too.
 * Real mTLS from the frontend's SVID straight to the inbound port; a real h2c app that holds
 * every stream until told.
 */
const SHARE = 2;
let mesh: MeshPair;
let app: http2.Http2Server;
const held: http2.ServerHttp2Stream[] = [];
let appCancelled = 0;
let session: http2.ClientHttp2Session;

interface Call {
  grpcStatus: string | undefined;
  code: string | undefined;
}

function call(path = '/shop.Orders/Watch'): Promise<Call> {
  return new Promise((resolve) => {
    const req = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' });
    let head: http2.IncomingHttpHeaders = {};
    req.on('response', (h) => (head = h));
    req.on('trailers', (t) => (head = { ...head, ...t }));
    req.on('error', () => {});
    req.resume();
    req.on('close', () => resolve({ grpcStatus: head['grpc-status'] as string | undefined, code: head['x-meshlet-error'] as string | undefined }));
    req.end();
  });
}

beforeAll(async () => {
  app = http2.createServer();
  app.on('stream', (stream) => {
    stream.on('error', () => {});
    stream.on('close', () => {
      if (stream.rstCode === http2.constants.NGHTTP2_CANCEL) appCancelled++;
    });
    held.push(stream);
  });
  const appPort = await listen(app);
  mesh = await startMeshPair({ protocol: 'grpc', appPort, settings: { limits: { maxInFlightPerCaller: SHARE }, timeouts: { streamIdleMs: 1_000 } } });
  const svid = mesh.pki.svids.frontend;
  session = http2.connect(`https://127.0.0.1:${mesh.inboundPort}`, { cert: svid.certChainPem, key: svid.privateKeyPem, ca: svid.bundlePem, checkServerIdentity: () => undefined });
  session.on('error', () => {});
});
afterAll(async () => {
  session?.destroy();
  await mesh?.close();
  await closeServer(app);
});

describe('HTTP/2 streams to an HTTP/2 app', () => {
  it(`a caller's streams past its share (${SHARE}) are refused at once: gRPC RESOURCE_EXHAUSTED, MESHLET_CALLER_LIMIT`, async () => {
    const refusedBefore = mesh.refused.length;
    const running = [call(), call()];
    await waitFor(() => held.length === SHARE, 'the caller\'s share at the app');
    expect(await call()).toEqual({ grpcStatus: '8', code: 'MESHLET_CALLER_LIMIT' });
    expect(held.length).toBe(SHARE);
    expect(mesh.refused.slice(refusedBefore)).toContainEqual({ direction: 'inbound', code: 'MESHLET_CALLER_LIMIT' });
    // The held streams go idle: the idle timeout answers them (next test) and frees the share.
    expect(await Promise.all(running)).toEqual([
      { grpcStatus: '4', code: 'MESHLET_UPSTREAM_TIMEOUT' },
      { grpcStatus: '4', code: 'MESHLET_UPSTREAM_TIMEOUT' },
    ]);
  });

  it('a stream on which nothing moved for timeouts.streamIdleMs: DEADLINE_EXCEEDED, cancelled at the app, share back', async () => {
    held.length = 0;
    const cancelledBefore = appCancelled;
    expect(await call()).toEqual({ grpcStatus: '4', code: 'MESHLET_UPSTREAM_TIMEOUT' });
    await waitFor(() => appCancelled === cancelledBefore + 1, 'the app\'s stream to be cancelled');
    // Both earlier streams and this one are over: the caller may use its whole share again.
    held.length = 0;
    const again = [call(), call()];
    await waitFor(() => held.length === SHARE, 'the full share at the app again');
    for (const s of held.splice(0)) {
      s.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      s.once('wantTrailers', () => s.sendTrailers({ 'grpc-status': '0' }));
      s.end();
    }
    expect(await Promise.all(again)).toEqual([
      { grpcStatus: '0', code: undefined },
      { grpcStatus: '0', code: undefined },
    ]);
  });
});
