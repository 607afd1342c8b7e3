import * as http from 'node:http';
import type * as net from 'node:net';
import { resolveProxySettings, type ProxySettings } from '../config.ts';
import { ConnectionRegistry, type TrackedConnection } from '../connection-registry.ts';
import { missingHost, ProxyError, respondWithError } from '../http/errors.ts';
import { forwardHeaders, PEER_IDENTITY_HEADER } from '../http/headers.ts';
import { forwardRequest, type ForwardingProxy, type NextHop } from '../http/forward-request.ts';
import { handleClientError } from '../http/client-error.ts';
import { drainServer } from '../drain.ts';
import type { ClientTls } from '../tls-dependency.ts';
import type { ProxyObserver } from '../proxy-observer.ts';
import { createUpstreamPool } from '../upstream/upstream-pool.ts';
import { DestinationTable, type DestinationConfig, type MeshDestination } from './destination-table.ts';

/**
 * The app's side: a plain HTTP listener its outbound traffic reaches, either by transparent
 * redirect (origin-form request, routed by Host) or because the app uses it as HTTP_PROXY
 * (absolute-form `GET http://host:port/path`, routed by the URI's authority). Mesh
 * destinations are reached over mTLS from a keep-alive pool per destination.
 */
export interface OutboundProxyOptions {
  readonly tls: ClientTls;
  readonly destinations: DestinationConfig;
  /** Default 127.0.0.1:15001 — the app's traffic only (the sidecar's own uid is not redirected). */
  readonly listenHost?: string;
  readonly listenPort?: number;
  readonly settings?: ProxySettings;
  readonly registry?: ConnectionRegistry;
  readonly observer?: ProxyObserver;
}

export const DEFAULT_OUTBOUND_PORT = 15001;

export class OutboundProxy implements ForwardingProxy {
  readonly registry: ConnectionRegistry;
  readonly #opts: OutboundProxyOptions;
  readonly #settings: ProxySettings;
  readonly #table: DestinationTable;
  readonly #meshHops = new Map<MeshDestination, NextHop>();
  readonly #plainHops = new Map<string, NextHop>();
  readonly #server: http.Server;
  readonly #tracked = new WeakMap<net.Socket, TrackedConnection>();
  #open = 0;
  #draining = false;

  constructor(opts: OutboundProxyOptions) {
    this.#opts = opts;
    this.#settings = opts.settings ?? resolveProxySettings();
    this.registry = opts.registry ?? new ConnectionRegistry();
    this.#table = new DestinationTable(opts.destinations);
    for (const d of this.#table.meshDestinations) {
      const who = d.expected.spiffeId ?? `trust domain ${d.expected.trustDomains?.join('|')}`;
      const label = `peer sidecar for ${d.host}:${d.port} (${who})`;
      const pool = createUpstreamPool(
        {
          label,
          host: d.address.host,
          port: d.address.port,
          // Asked per NEW connection, so a rotated SVID is used from the next connection on.
          tlsOptions: () => opts.tls.connectOptions(d.expected, { ALPNProtocols: ['http/1.1'] }),
        },
        { settings: this.#settings, registry: this.registry, direction: 'outbound' },
      );
      this.#meshHops.set(d, { pool, label: `${label} at ${d.address.host}:${d.address.port}` });
    }
    this.#server = this.#createServer();
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.#opts.listenPort ?? DEFAULT_OUTBOUND_PORT, this.#opts.listenHost ?? '127.0.0.1', () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
  }

  boundPort(): number {
    return (this.#server.address() as net.AddressInfo).port;
  }

  get draining(): boolean {
    return this.#draining;
  }

  async drain(): Promise<number> {
    this.#draining = true;
    const cut = await drainServer(this.#server, this.#settings.timeouts.drainMs, () => this.#open);
    await Promise.all([...this.#meshHops.values(), ...this.#plainHops.values()].map((hop) => hop.pool.destroy()));
    return cut;
  }

  closeAfterResponse(): boolean {
    return this.#draining;
  }

  fail(res: http.ServerResponse, err: ProxyError): void {
    this.#opts.observer?.refused?.('outbound', err.code);
    respondWithError(res, err);
  }

  #createServer(): http.Server {
    const { timeouts, limits } = this.#settings;
    const server = http.createServer({
      insecureHTTPParser: false,
      maxHeaderSize: limits.maxHeaderBytes,
      noDelay: true,
      keepAliveTimeout: timeouts.idleMs,
      headersTimeout: timeouts.requestHeadersMs,
      // node checks the head deadline on this period (default 30 s); half the timeout keeps it honest.
      connectionsCheckingInterval: Math.min(Math.ceil(timeouts.requestHeadersMs / 2), 30_000),
      requestTimeout: 0,
      // Checked by the proxy itself, so the refusal carries the catalog code (node's own 400 would not).
      requireHostHeader: false,
    });
    server.maxHeadersCount = limits.maxHeaderCount + 1;
    server.on('connection', (socket: net.Socket) => {
      this.#tracked.set(socket, this.registry.track('outbound', 'accepted', socket));
      this.#open++;
      socket.once('close', () => this.#open--);
    });
    server.on('clientError', (err: Error & { code?: string }, socket) =>
      handleClientError(err, socket, (code) => this.#opts.observer?.refused?.('outbound', code)),
    );
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => this.#onRequest(req, res));
    return server;
  }

  #onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const conn = this.#tracked.get(req.socket);
    if (conn !== undefined) conn.requests++;
    const raw = req.rawHeaders;
    if (raw.length > this.#settings.limits.maxHeaderCount * 2) {
      return this.fail(res, new ProxyError('MESHLET_TOO_MANY_HEADERS', `more than ${this.#settings.limits.maxHeaderCount} header fields`, { closeConnection: true }));
    }
    // The identity header is only ever set by the inbound sidecar; an app cannot pass one along.
    const head = forwardHeaders(raw, PEER_IDENTITY_HEADER);
    if (head.host === '' && req.httpVersionMinor === 1) return this.fail(res, missingHost());
    let target = req.url ?? '/';
    let authority = head.host;
    if (target.charCodeAt(0) !== 47 /* '/' */) {
      // HTTP_PROXY mode: absolute-form. Only http:// — TLS from the app would be opaque to us.
      if (!target.startsWith('http://')) {
        return this.fail(res, new ProxyError('MESHLET_BAD_REQUEST', `unsupported request target ${JSON.stringify(target.slice(0, 100))}: only origin-form or http:// absolute-form`));
      }
      const slash = target.indexOf('/', 7);
      authority = slash === -1 ? target.slice(7) : target.slice(7, slash);
      target = slash === -1 ? '/' : target.slice(slash);
    }
    if (authority === '') {
      return this.fail(res, new ProxyError('MESHLET_MISSING_HOST', 'the request names no destination (no Host header, no absolute URI)'));
    }
    const route = this.#table.resolve(authority);
    if (route === null) {
      return this.fail(res, new ProxyError('MESHLET_UNKNOWN_DESTINATION', `${authority} is not a known mesh destination nor a configured plaintext destination; refused (the sidecar never sends plaintext on its own)`));
    }
    const hop = route.kind === 'mesh' ? this.#meshHops.get(route.destination)! : this.#plainHop(route.host, route.port);
    forwardRequest(req, res, hop, target, head, this);
  }

  /** One pool per plaintext destination, made on first use (the rules bound which can exist). */
  #plainHop(host: string, port: number): NextHop {
    const key = `${host}:${port}`;
    let hop = this.#plainHops.get(key);
    if (hop === undefined) {
      const label = `plaintext destination ${key}`;
      const pool = createUpstreamPool({ label, host, port }, { settings: this.#settings, registry: this.registry, direction: 'outbound' });
      hop = { pool, label };
      this.#plainHops.set(key, hop);
    }
    return hop;
  }
}
