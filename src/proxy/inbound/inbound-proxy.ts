import * as http from 'node:http';
import * as https from 'node:https';
import type * as net from 'node:net';
import type * as tls from 'node:tls';
import { resolveProxySettings, type ProxySettings } from '../config.ts';
import { ConnectionRegistry, type TrackedConnection } from '../connection-registry.ts';
import { missingHost, ProxyError, respondWithError } from '../http/errors.ts';
import { forwardHeaders, PEER_IDENTITY_HEADER } from '../http/headers.ts';
import { forwardRequest, type ForwardingProxy, type NextHop } from '../http/forward-request.ts';
import { handleClientError } from '../http/client-error.ts';
import { drainServer } from '../drain.ts';
import type { AuthorizationDecision, PathNormalizer, RequestAuthorizer, RequestFacts } from '../request-authorizer.ts';
import type { ServerTls } from '../tls-dependency.ts';
import type { ProxyObserver } from '../proxy-observer.ts';
import { createUpstreamPool } from '../upstream/upstream-pool.ts';

/**
 * One inbound listener per app port. Transparent interception REDIRECTs each app port to its
 * own sidecar port, and Node cannot read SO_ORIGINAL_DST, so the listener a connection
 * arrived on is what tells the app port it was meant for.
 */
export interface InboundPort {
  /** The sidecar port the app port's traffic is redirected to (0 = any free port, for tests). */
  readonly listenPort: number;
  /** The app's port on loopback. */
  readonly appPort: number;
  readonly protocol: 'http1';
}

export interface InboundProxyOptions {
  readonly tls: ServerTls;
  readonly authorizer: RequestAuthorizer;
  readonly normalizer: PathNormalizer;
  readonly ports: readonly InboundPort[];
  /** Address the listeners bind; default 0.0.0.0 (callers come from other pods). */
  readonly listenHost?: string;
  /** Where the app listens; default 127.0.0.1. */
  readonly appHost?: string;
  readonly settings?: ProxySettings;
  readonly registry?: ConnectionRegistry;
  readonly observer?: ProxyObserver;
}

interface PortListener {
  readonly port: InboundPort;
  readonly server: https.Server;
  readonly hop: NextHop;
  readonly detachTls: () => void;
  open: number;
}

export class InboundProxy implements ForwardingProxy {
  readonly registry: ConnectionRegistry;
  readonly #opts: InboundProxyOptions;
  readonly #settings: ProxySettings;
  readonly #listeners: PortListener[] = [];
  readonly #tracked = new WeakMap<net.Socket, TrackedConnection>();
  #draining = false;

  constructor(opts: InboundProxyOptions) {
    this.#opts = opts;
    this.#settings = opts.settings ?? resolveProxySettings();
    this.registry = opts.registry ?? new ConnectionRegistry();
    const appHost = opts.appHost ?? '127.0.0.1';
    for (const port of opts.ports) {
      const server = this.#createServer();
      const label = `app port ${port.appPort}`;
      const pool = createUpstreamPool({ label, host: appHost, port: port.appPort }, { settings: this.#settings, registry: this.registry, direction: 'inbound' });
      const hop: NextHop = { pool, label };
      const l: PortListener = { port, server, hop, detachTls: opts.tls.attachServer(server), open: 0 };
      server.on('secureConnection', (socket: tls.TLSSocket) => this.#onSecureConnection(socket, l));
      server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => this.#onRequest(req, res, l));
      this.#listeners.push(l);
    }
  }

  /** Binds every listener; resolves once all are listening. */
  async start(): Promise<void> {
    const host = this.#opts.listenHost ?? '0.0.0.0';
    await Promise.all(
      this.#listeners.map(
        (l) =>
          new Promise<void>((resolve, reject) => {
            l.server.once('error', reject);
            l.server.listen(l.port.listenPort, host, () => {
              l.server.off('error', reject);
              resolve();
            });
          }),
      ),
    );
  }

  /** The bound ports (listenPort resolved when 0 was asked). */
  boundPorts(): { listenPort: number; appPort: number }[] {
    return this.#listeners.map((l) => ({ listenPort: (l.server.address() as net.AddressInfo).port, appPort: l.port.appPort }));
  }

  get draining(): boolean {
    return this.#draining;
  }

  /** Stop accepting, finish in-flight requests (up to timeouts.drainMs), close the rest. Returns connections cut. */
  async drain(): Promise<number> {
    this.#draining = true;
    const cut = await Promise.all(this.#listeners.map((l) => drainServer(l.server, this.#settings.timeouts.drainMs, () => l.open)));
    for (const l of this.#listeners) {
      l.detachTls();
      await l.hop.pool.destroy();
    }
    return cut.reduce((a, b) => a + b, 0);
  }

  closeAfterResponse(): boolean {
    return this.#draining;
  }

  fail(res: http.ServerResponse, err: ProxyError): void {
    this.#opts.observer?.refused?.('inbound', err.code);
    respondWithError(res, err);
  }

  #createServer(): https.Server {
    const { timeouts, limits } = this.#settings;
    const server = https.createServer({
      ...this.#opts.tls.serverOptions({ ALPNProtocols: ['http/1.1'] }),
      handshakeTimeout: timeouts.tlsHandshakeMs,
      // Strict llhttp: refuses CL+TE, conflicting CL, obs-fold, invalid bytes (tested one by one).
      insecureHTTPParser: false,
      maxHeaderSize: limits.maxHeaderBytes,
      noDelay: true,
      keepAliveTimeout: timeouts.idleMs,
      headersTimeout: timeouts.requestHeadersMs,
      // node checks the head deadline on this period (default 30 s); half the timeout keeps it honest.
      connectionsCheckingInterval: Math.min(Math.ceil(timeouts.requestHeadersMs / 2), 30_000),
      // Bodies may stream for as long as they need; slow heads are bounded by headersTimeout.
      requestTimeout: 0,
      // Checked by the proxy itself, so the refusal carries the catalog code (node's own 400 would not).
      requireHostHeader: false,
    });
    // One more than the limit, so an excess is SEEN (node silently drops fields past maxHeadersCount).
    server.maxHeadersCount = limits.maxHeaderCount + 1;
    server.on('tlsClientError', (err) => this.#opts.observer?.handshakeFailed?.('inbound', err));
    server.on('clientError', (err: Error & { code?: string }, socket) =>
      handleClientError(err, socket, (code) => this.#opts.observer?.refused?.('inbound', code)),
    );
    return server;
  }

  #onSecureConnection(socket: tls.TLSSocket, l: PortListener): void {
    let peer: string;
    try {
      peer = this.#opts.tls.verifyClient(socket).spiffeId.id;
    } catch (err) {
      this.#opts.observer?.handshakeFailed?.('inbound', err);
      socket.destroy();
      return;
    }
    const conn = this.registry.track('inbound', 'accepted', socket);
    conn.peerIdentity = peer;
    conn.tlsVersion = socket.getProtocol() ?? null;
    this.#tracked.set(socket, conn);
    l.open++;
    socket.once('close', () => l.open--);
  }

  #onRequest(req: http.IncomingMessage, res: http.ServerResponse, l: PortListener): void {
    const conn = this.#tracked.get(req.socket);
    if (conn === undefined) {
      // Verification failed after the parser already had bytes: never forward.
      req.socket.destroy();
      return;
    }
    conn.requests++;
    const raw = req.rawHeaders;
    if (raw.length > this.#settings.limits.maxHeaderCount * 2) {
      return this.fail(res, new ProxyError('MESHLET_TOO_MANY_HEADERS', `more than ${this.#settings.limits.maxHeaderCount} header fields`, { closeConnection: true }));
    }
    const target = req.url ?? '/';
    const q = target.indexOf('?');
    const normalized = this.#opts.normalizer.normalize(q === -1 ? target : target.slice(0, q));
    if (!normalized.ok) {
      return this.fail(res, new ProxyError('MESHLET_BAD_PATH', `request path refused: ${normalized.reason}`));
    }
    const head = forwardHeaders(raw, PEER_IDENTITY_HEADER);
    if (head.host === '' && req.httpVersionMinor === 1) return this.fail(res, missingHost());
    const method = req.method ?? 'GET';
    const facts: RequestFacts = { peer: conn.peerIdentity, port: l.port.appPort, method, path: normalized.path, grpc: grpcFacts(head.contentType, normalized.path) };
    let decision: AuthorizationDecision;
    try {
      decision = this.#opts.authorizer.authorize(facts);
    } catch (err) {
      return this.fail(res, new ProxyError('MESHLET_INTERNAL', 'the policy could not decide', { cause: err }));
    }
    if (decision.decision !== 'allow') {
      return this.fail(res, new ProxyError('MESHLET_DENIED', 'request denied by policy', { details: { route: decision.route, reason: decision.reason } }));
    }
    head.headers.push(PEER_IDENTITY_HEADER, conn.peerIdentity!);
    forwardRequest(req, res, l.hop, q === -1 ? normalized.path : normalized.path + target.slice(q), head, this);
  }
}

/** gRPC over HTTP/2 names `/<package.Service>/<Method>`; undefined for anything else. */
function grpcFacts(contentType: string, path: string): RequestFacts['grpc'] {
  if (!contentType.startsWith('application/grpc')) return undefined;
  const slash = path.indexOf('/', 1);
  if (slash === -1 || path.indexOf('/', slash + 1) !== -1) return undefined;
  return { service: path.slice(1, slash), method: path.slice(slash + 1) };
}
