import * as http from 'node:http';
import { InboundProxy } from '../../../../src/data-plane/proxy/inbound/inbound-proxy.ts';
import { OutboundProxy } from '../../../../src/data-plane/proxy/outbound/outbound-proxy.ts';
import { resolveProxySettings, type ProxySettingsInput } from '../../../../src/data-plane/proxy/config.ts';
import type { PlaintextRule } from '../../../../src/data-plane/proxy/outbound/destination-table.ts';
import type { ProxyErrorCode } from '../../../../src/data-plane/proxy/http/errors.ts';
import type { RequestAuthorizer } from '../../../../src/data-plane/proxy/request-authorizer.ts';
import { closeServer, createMeshPki, IDS, listen, meshTlsFor, type MeshPki } from './mesh-fixture.ts';
import { DenyByPathAuthorizer, strictPathNormalizer } from './stand-in-policy.ts';
import { handshakeFailureReason, type HandshakeFailureReason } from '../../../../src/data-plane/tls/handshake-failure-reason.ts';
import type { DefaultMesh } from '../../../../src/data-plane/proxy/outbound/destination-table.ts';

/** What the app saw of one request. */
export interface AppSaw {
  method: string;
  url: string;
  rawHeaders: string[];
  body: string;
}

/**
 * The whole hop on loopback: frontend's outbound sidecar -> mTLS -> orders' inbound sidecar ->
 * orders' app. The app answers with a JSON echo of what it received unless a test installs
 * its own handler.
 */
export interface MeshPair {
  pki: MeshPki;
  app: http.Server;
  appPort: number;
  appSaw: AppSaw[];
  inbound: InboundProxy;
  inboundPort: number;
  outbound: OutboundProxy;
  outboundPort: number;
  refused: { direction: string; code: ProxyErrorCode }[];
  /** Inbound TLS failures the observer saw, classified as the metrics label would be. */
  handshakeFailures: { direction: string; reason: HandshakeFailureReason }[];
  /** Replace the app's behaviour. */
  setHandler(h: http.RequestListener): void;
  /** Back to the JSON echo. */
  resetHandler(): void;
  close(): Promise<void>;
}

/** The test app: records what it saw and answers with a JSON echo of it. */
export function echoApp(appSaw: AppSaw[]): http.RequestListener {
  return (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      appSaw.push({ method: req.method!, url: req.url!, rawHeaders: req.rawHeaders, body: body.toString() });
      const echo = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, bodyLength: body.length });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(echo) });
      res.end(echo);
    });
  };
}

export const ORDERS_AUTHORITY = 'orders.shop.svc.cluster.local:8080';

export async function startMeshPair(opts: {
  pki?: MeshPki;
  authorizer?: RequestAuthorizer;
  settings?: ProxySettingsInput;
  /** Expected identity of orders, as the frontend's destination table says (default: the right one). */
  expectedOrdersId?: string;
  /** Identity the orders sidecar presents (default: orders). */
  ordersSvid?: 'orders' | 'imposter';
  plaintext?: PlaintextRule[];
  extraMesh?: { host: string; port: number; address: { host: string; port: number }; expected: { spiffeId: string } }[];
  /** The inbound port's protocol (default http). */
  protocol?: 'http' | 'grpc';
  permissive?: boolean;
  /** Put the inbound listener in front of this app port instead of the echo app (e.g. a gRPC server). */
  appPort?: number;
  /** The frontend's outbound dials unlisted destinations as named (no orders entry is configured then). */
  defaultMesh?: DefaultMesh | ((inboundPort: number) => DefaultMesh);
} = {}): Promise<MeshPair> {
  const pki = opts.pki ?? (await createMeshPki());
  const appSaw: AppSaw[] = [];
  let handler = echoApp(appSaw);
  const app = http.createServer((req, res) => handler(req, res));
  const appPort = await listen(app);
  const settings = resolveProxySettings(opts.settings);
  const refused: MeshPair['refused'] = [];
  const handshakeFailures: MeshPair['handshakeFailures'] = [];
  const observer = {
    refused: (direction: string, code: ProxyErrorCode) => refused.push({ direction, code }),
    handshakeFailed: (direction: string, err: unknown) => handshakeFailures.push({ direction, reason: handshakeFailureReason(err) }),
  };

  const inbound = new InboundProxy({
    tls: meshTlsFor(pki.svids[opts.ordersSvid ?? 'orders']),
    authorizer: opts.authorizer ?? new DenyByPathAuthorizer(['/admin']),
    normalizer: strictPathNormalizer,
    ports: [{ listenPort: 0, appPort: opts.appPort ?? appPort, protocol: opts.protocol ?? 'http', permissive: opts.permissive ?? false }],
    listenHost: '127.0.0.1',
    settings,
    observer,
  });
  await inbound.start();
  const inboundPort = inbound.boundPorts()[0]!.listenPort;

  const outbound = new OutboundProxy({
    tls: meshTlsFor(pki.svids.frontend),
    destinations: {
      mesh: [
        ...(opts.defaultMesh
          ? []
          : [{ host: 'orders.shop.svc.cluster.local', port: 8080, address: { host: '127.0.0.1', port: inboundPort }, expected: { spiffeId: opts.expectedOrdersId ?? IDS.orders } }]),
        ...(opts.extraMesh ?? []),
      ],
      plaintext: opts.plaintext ?? [],
      ...(opts.defaultMesh ? { defaultMesh: typeof opts.defaultMesh === 'function' ? opts.defaultMesh(inboundPort) : opts.defaultMesh } : {}),
    },
    listenHost: '127.0.0.1',
    listenPort: 0,
    settings,
    observer,
  });
  await outbound.start();

  return {
    pki, app, appPort, appSaw, inbound, inboundPort, outbound, outboundPort: outbound.boundPort(), refused, handshakeFailures,
    setHandler(h) {
      handler = h;
    },
    resetHandler() {
      handler = echoApp(appSaw);
    },
    async close() {
      await Promise.all([outbound.drain(), inbound.drain()]);
      await closeServer(app);
    },
  };
}
