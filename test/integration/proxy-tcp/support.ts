import { createHash } from 'node:crypto';
import * as net from 'node:net';
import { OpaqueTcpProxy } from '../../../src/data-plane/proxy/tcp/opaque-inbound.ts';
import { OpaqueTcpOutbound } from '../../../src/data-plane/proxy/tcp/opaque-outbound.ts';
import type { ConnectionAuthorizer, ConnectionFacts } from '../../../src/data-plane/proxy/tcp/connection-authorizer.ts';
import type { TcpRefusalCode } from '../../../src/data-plane/proxy/tcp/tcp-refusals.ts';
import { resolveProxySettings, type ProxySettingsInput } from '../../../src/data-plane/proxy/config.ts';
import type { AuthorizationDecision } from '../../../src/data-plane/proxy/request-authorizer.ts';
import { closeServer, createMeshPki, IDS, listen, meshTlsFor, type MeshPki } from '../proxy/support/mesh-fixture.ts';

/** A TCP echo app: echoes every byte; when the caller half-closes, finishes echoing and closes its side. */
export interface EchoApp {
  server: net.Server;
  port: number;
  /** Connections the app has accepted. */
  accepted: number;
}

export async function startEchoApp(): Promise<EchoApp> {
  const app: EchoApp = { server: net.createServer({ allowHalfOpen: true }), port: 0, accepted: 0 };
  app.server.on('connection', (s) => {
    app.accepted++;
    s.on('error', () => s.destroy());
    s.pipe(s);
  });
  app.port = await listen(app.server);
  return app;
}

/** Allows the listed callers on any port; records the facts it was asked about. */
export class CallerListAuthorizer implements ConnectionAuthorizer {
  readonly seen: ConnectionFacts[] = [];
  readonly #allowed: readonly string[];
  constructor(allowed: readonly string[]) {
    this.#allowed = allowed;
  }
  authorize(facts: ConnectionFacts): AuthorizationDecision {
    this.seen.push(facts);
    return this.#allowed.includes(facts.peer)
      ? { decision: 'allow', route: 'db-clients', reason: 'caller is listed' }
      : { decision: 'deny', route: 'db-clients', reason: 'caller is not listed' };
  }
}

/**
 * frontend's app -> OpaqueTcpOutbound (mapping to orders) == mTLS ==> orders' OpaqueTcpProxy -> echo app.
 * Only frontend is allowed on orders' tcp port.
 */
export interface TcpMesh {
  pki: MeshPki;
  app: EchoApp;
  authorizer: CallerListAuthorizer;
  inbound: OpaqueTcpProxy;
  inboundPort: number;
  outbound: OpaqueTcpOutbound;
  outboundPort: number;
  refused: { direction: string; code: TcpRefusalCode }[];
  handshakeFailures: unknown[];
  close(): Promise<void>;
}

export async function startTcpMesh(opts: { pki?: MeshPki; settings?: ProxySettingsInput; expectedOrdersId?: string; caller?: 'frontend' | 'imposter' } = {}): Promise<TcpMesh> {
  const pki = opts.pki ?? (await createMeshPki());
  const app = await startEchoApp();
  const settings = resolveProxySettings(opts.settings);
  const refused: TcpMesh['refused'] = [];
  const handshakeFailures: unknown[] = [];
  const observer = {
    refused: (direction: string, code: TcpRefusalCode) => refused.push({ direction, code }),
    handshakeFailed: (_direction: string, err: unknown) => handshakeFailures.push(err),
  };
  const authorizer = new CallerListAuthorizer([IDS.frontend]);
  const inbound = new OpaqueTcpProxy({
    tls: meshTlsFor(pki.svids.orders),
    authorizer,
    ports: [{ listenPort: 0, appPort: app.port }],
    listenHost: '127.0.0.1',
    settings,
    observer,
  });
  await inbound.start();
  const inboundPort = inbound.boundPorts()[0]!.listenPort;
  const outbound = new OpaqueTcpOutbound({
    tls: meshTlsFor(pki.svids[opts.caller ?? 'frontend']),
    listeners: [{ listenPort: 0, destination: { host: '127.0.0.1', port: inboundPort, expected: { spiffeId: opts.expectedOrdersId ?? IDS.orders }, name: 'orders-db' } }],
    settings,
    observer,
  });
  await outbound.start();
  return {
    pki, app, authorizer, inbound, inboundPort, outbound, outboundPort: outbound.boundPorts()[0]!.listenPort, refused, handshakeFailures,
    async close() {
      await Promise.all([outbound.drain(), inbound.drain()]);
      await closeServer(app.server);
    },
  };
}

/** What a client saw of one connection: every byte until the other side closed, and how it closed. */
export interface Conversation {
  received: Buffer;
  /** 'end': an orderly FIN; 'error:<code>': reset or other error. */
  how: string;
}

/** Connects, sends `payload` (in chunks), half-closes, reads until the server closes. */
export function converse(port: number, payload: Buffer, opts: { halfClose?: boolean } = {}): Promise<Conversation> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    let how = 'close';
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => {
      how = 'end';
      socket.end();
    });
    socket.on('error', (err: Error & { code?: string }) => {
      how = `error:${err.code ?? err.message}`;
    });
    socket.on('close', () => resolve({ received: Buffer.concat(chunks), how }));
    socket.once('connect', () => {
      for (let off = 0; off < payload.length; off += 64 * 1024) socket.write(payload.subarray(off, off + 64 * 1024));
      if (opts.halfClose !== false) socket.end();
    });
  });
}

export function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** One TCP connection kept open to an echo app (through whatever listens on `port`). */
export interface OpenEcho {
  /** Writes `text`, resolves with the echo (rejects when the connection is gone). */
  echo(text: string): Promise<string>;
  readonly closed: Promise<void>;
  isClosed(): boolean;
  end(): void;
}

export async function openEcho(port: number): Promise<OpenEcho> {
  const socket = net.connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  socket.on('error', () => undefined);
  socket.setEncoding('utf8');
  let gone = false;
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  void closed.then(() => (gone = true));
  return {
    echo: (text) =>
      new Promise((resolve, reject) => {
        let got = '';
        const onData = (d: string) => {
          got += d;
          if (got.length < text.length) return;
          socket.off('data', onData);
          resolve(got);
        };
        socket.on('data', onData);
        socket.once('close', () => reject(new Error(`closed after ${JSON.stringify(got)}`)));
        socket.write(text);
      }),
    closed,
    isClosed: () => gone,
    end: () => socket.destroy(),
  };
}
