import * as http2 from 'node:http2';
import type * as tls from 'node:tls';
import { echoApp, type MeshPair } from '../../proxy/support/mesh-pair.ts';
import { listen } from '../../proxy/support/mesh-fixture.ts';

/**
 * Apps for the security regression tests that record what reached them AS IT ARRIVES: a
 * request head is recorded on node's 'request' event, before any body, so a head forwarded
 * ahead of a refusal (the app got the head, the body was then cut) is seen too — the mesh
 * pair's own echo records only requests whose body completed.
 */

/** One request head as the app saw it; trailers once the body ended (null until then). */
export interface HeadSeen {
  method: string;
  url: string;
  rawHeaders: string[];
  rawTrailers: string[] | null;
}

/** Makes the mesh pair's app record every head on arrival, then answer with the usual JSON echo. */
export function recordHeads(mesh: MeshPair): HeadSeen[] {
  const heads: HeadSeen[] = [];
  const echo = echoApp(mesh.appSaw);
  mesh.setHandler((req, res) => {
    const seen: HeadSeen = { method: req.method!, url: req.url!, rawHeaders: req.rawHeaders, rawTrailers: null };
    heads.push(seen);
    req.once('end', () => (seen.rawTrailers = req.rawTrailers));
    echo(req, res);
  });
  return heads;
}

/** Upgrade requests that reached the mesh pair's app; each is answered 403 and closed. */
export function recordUpgrades(mesh: MeshPair): HeadSeen[] {
  const seen: HeadSeen[] = [];
  mesh.app.on('upgrade', (req, socket) => {
    seen.push({ method: req.method!, url: req.url!, rawHeaders: req.rawHeaders, rawTrailers: null });
    socket.end('HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
  });
  return seen;
}

/**
 * How a CGI-style server (wsgiref, Rack, older gunicorn and Puma) names a request field: upper
 * case, `-` read as `_`, prefixed `HTTP_`. `x_meshlet_peer_identity` and
 * `X-Meshlet-Peer-Identity` both become HTTP_X_MESHLET_PEER_IDENTITY.
 */
export function cgiValues(rawHeaders: readonly string[], cgiName: string): string[] {
  const values: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (`HTTP_${rawHeaders[i]!.toUpperCase().replaceAll('-', '_')}` === cgiName) values.push(rawHeaders[i + 1]!);
  }
  return values;
}

/** An h2c app (what a gRPC or HTTP/2 port runs) that records each stream's head and trailers. */
export interface H2StreamSeen {
  rawHeaders: string[];
  trailers: http2.IncomingHttpHeaders | null;
}

export async function startH2App(): Promise<{ server: http2.Http2Server; port: number; seen: H2StreamSeen[] }> {
  const seen: H2StreamSeen[] = [];
  const server = http2.createServer();
  server.on('stream', (stream, _headers, _flags, rawHeaders: string[]) => {
    const entry: H2StreamSeen = { rawHeaders, trailers: null };
    seen.push(entry);
    stream.on('error', () => undefined);
    stream.on('trailers', (t: http2.IncomingHttpHeaders) => (entry.trailers = t));
    stream.resume();
    const answer = (): void => {
      if (stream.destroyed || stream.headersSent) return;
      stream.respond({ ':status': 200, 'content-type': 'text/plain' });
      stream.end('ok');
    };
    if (stream.endAfterHeaders) answer();
    else stream.once('end', answer);
  });
  const port = await listen(server);
  return { server, port, seen };
}

export interface H2Answer {
  headers: http2.IncomingHttpHeaders;
  body: string;
  /** The stream was reset instead of answered. */
  rstCode: number;
}

/** One request on an HTTP/2 session; `trailers` sends a body of one byte, then those trailers. */
export function h2Request(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, trailers?: http2.OutgoingHttpHeaders): Promise<H2Answer> {
  return new Promise((resolve) => {
    const req = session.request(headers, trailers === undefined ? { endStream: true } : { waitForTrailers: true });
    let head: http2.IncomingHttpHeaders = {};
    let body = '';
    req.setEncoding('utf8');
    req.on('response', (h) => (head = h));
    req.on('data', (c: string) => (body += c));
    req.on('error', () => undefined);
    req.on('close', () => resolve({ headers: head, body, rstCode: req.rstCode ?? 0 }));
    if (trailers !== undefined) {
      req.on('wantTrailers', () => req.sendTrailers(trailers));
      req.end('x');
    }
  });
}

/** TLS options for a test client that speaks to an inbound port directly, as the frontend's sidecar would. */
export function frontendTls(mesh: MeshPair): tls.ConnectionOptions {
  const f = mesh.pki.svids.frontend;
  return { cert: f.certChainPem, key: f.privateKeyPem, ca: f.bundlePem, minVersion: 'TLSv1.3', checkServerIdentity: () => undefined };
}

/** An HTTP/2 session over mTLS straight to an inbound port (ALPN h2). */
export function connectInboundH2(mesh: MeshPair): http2.ClientHttp2Session {
  const session = http2.connect(`https://127.0.0.1:${mesh.inboundPort}`, { ...frontendTls(mesh), ALPNProtocols: ['h2'] });
  session.on('error', () => undefined);
  return session;
}

/** An h2c session to the outbound listener, as a gRPC or HTTP/2 app speaks to its sidecar. */
export function connectOutboundH2(mesh: MeshPair): http2.ClientHttp2Session {
  const session = http2.connect(`http://127.0.0.1:${mesh.outboundPort}`);
  session.on('error', () => undefined);
  return session;
}
