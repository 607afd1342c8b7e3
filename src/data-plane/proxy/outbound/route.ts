import type * as http2 from 'node:http2';
import type { TrackedConnection } from '../connection-registry.ts';
import { malformedRequest, ProxyError } from '../http/errors.ts';
import { quoted } from '../http/headers.ts';
import type { NextHop } from '../http/forward-request.ts';
import type { NextHopContext, NextHopTarget } from '../http/next-hop-socket.ts';
import { H2SessionPool } from '../h2/h2-session-pool.ts';
import type { DecideStep, Decision, Destination } from '../pipeline/request-pipeline.ts';
import type { Http1Head, StreamHead } from '../pipeline/request-head.ts';
import { createUpstreamPool } from '../upstream/upstream-pool.ts';
import type { ClientTls } from '../tls-dependency.ts';
import { DestinationTable, type DestinationConfig, type MeshDestination, type Route } from './destination-table.ts';

/**
 * The outbound deciding step: which destination a request names, and whether the sidecar may
 * go there. Routed by Host / :authority (a transparently redirected request) or by the
 * absolute-form URI's authority (the app uses the sidecar as HTTP_PROXY). A name that is
 * neither a mesh destination nor a configured plaintext one is refused: the sidecar never
 * sends plaintext on its own. Each destination's hops are made once, on first use.
 */
export class RouteStep implements DecideStep {
  readonly #table: DestinationTable;
  readonly #tls: ClientTls;
  readonly #hopContext: NextHopContext;
  readonly #handshakeFailed: (err: Error) => void;
  /** Keyed by `mesh:host:port` / `plain:host:port`. */
  readonly #destinations = new Map<string, OutboundDestination>();

  constructor(config: DestinationConfig, tls: ClientTls, hopContext: NextHopContext, handshakeFailed: (err: Error) => void) {
    this.#table = new DestinationTable(config);
    this.#tls = tls;
    this.#hopContext = hopContext;
    this.#handshakeFailed = handshakeFailed;
  }

  decide(head: Http1Head | StreamHead, _conn: TrackedConnection): Decision | ProxyError {
    let authority = head.authority;
    let path = head.target;
    if (head.protocol === 'http1' && path.charCodeAt(0) !== 47 /* '/' */) {
      const absolute = absoluteForm(head);
      if (absolute instanceof ProxyError) return absolute;
      ({ authority, path } = absolute);
    }
    if (authority === '') {
      return new ProxyError('MESHLET_MISSING_HOST', head.protocol === 'h2' ? 'the stream names no destination (no :authority, no Host)' : 'the request names no destination (no Host header, no absolute URI)');
    }
    const route = this.#table.resolve(authority);
    if (route === null) {
      return new ProxyError('MESHLET_UNKNOWN_DESTINATION', `${authority} is not a known mesh destination nor a configured plaintext destination; refused (the sidecar never sends plaintext on its own)`);
    }
    return { destination: this.#destination(route), path, route: undefined, authz: 'none', identity: null };
  }

  /** Every destination used so far (drain closes their pools). */
  destinations(): Iterable<OutboundDestination> {
    return this.#destinations.values();
  }

  #destination(route: Route): OutboundDestination {
    const key = `${route.kind}:${route.host}:${route.port}`;
    let d = this.#destinations.get(key);
    if (d === undefined) {
      d = route.kind === 'mesh' ? this.#mesh(route.destination) : this.#plain(route.host, route.port);
      this.#destinations.set(key, d);
    }
    return d;
  }

  #mesh(d: MeshDestination): OutboundDestination {
    const who = d.expected.spiffeId ?? `trust domain ${d.expected.trustDomains?.join('|')}`;
    const label = `peer sidecar for ${d.host}:${d.port} (${who})`;
    const tls = this.#tls;
    // Asked per NEW connection, so a rotated SVID is used from the next connection on.
    const target = (alpn: string): NextHopTarget => ({
      label,
      host: d.address.host,
      port: d.address.port,
      tlsOptions: () => tls.connectOptions(d.expected, { ALPNProtocols: [alpn] }),
      ...(tls.verifyServer ? { peerIdentity: (s) => tls.verifyServer!(s).spiffeId.id } : {}),
      handshakeFailed: this.#handshakeFailed,
    });
    return new OutboundDestination(target('http/1.1'), target('h2'), this.#hopContext);
  }

  #plain(host: string, port: number): OutboundDestination {
    const target: NextHopTarget = { label: `plaintext destination ${host}:${port}`, host, port };
    return new OutboundDestination(target, target, this.#hopContext);
  }
}

/**
 * One destination as the forward step reaches it: an HTTP/1.1 keep-alive pool (mTLS with
 * ALPN http/1.1 toward a peer sidecar) and ONE multiplexed HTTP/2 session (ALPN h2; h2c to a
 * plaintext destination) — gRPC needs HTTP/2 end to end (trailers). Upgrade requests get a
 * connection of their own (ALPN http/1.1). Each pool is made on first use.
 */
export class OutboundDestination implements Destination {
  readonly tunnel: NextHopTarget;
  readonly #h2Target: NextHopTarget;
  readonly #hopContext: NextHopContext;
  #http1: NextHop | null = null;
  #h2: H2SessionPool | null = null;

  constructor(http1Target: NextHopTarget, h2Target: NextHopTarget, hopContext: NextHopContext) {
    this.tunnel = http1Target;
    this.#h2Target = h2Target;
    this.#hopContext = hopContext;
  }

  http1(_caller: string | null): NextHop {
    if (this.#http1 === null) {
      const t = this.tunnel;
      this.#http1 = { pool: createUpstreamPool(t, this.#hopContext), label: `${t.label}${t.tlsOptions ? ` at ${t.host}:${t.port}` : ''}` };
    }
    return this.#http1;
  }

  /** The app chose HTTP/2 (h2c prior knowledge); its streams stay HTTP/2 to the destination. */
  streamsOverH2(_grpc: boolean): boolean {
    return true;
  }

  h2(): H2SessionPool {
    return (this.#h2 ??= new H2SessionPool(this.#h2Target, this.#hopContext));
  }

  /** Outbound, the app is the only caller: no per-caller share. */
  admitStream(_caller: string | null, _stream: http2.ServerHttp2Stream): ProxyError | null {
    return null;
  }

  async close(): Promise<void> {
    this.#h2?.destroy();
    if (this.#http1 !== null) await this.#http1.pool.destroy();
  }
}

/**
 * An absolute-form target (`GET http://host:port/path`, HTTP_PROXY mode): the URI's authority
 * routes, so a Host naming anything else is a 400 (the next hop and the app would read the
 * Host); without a Host (HTTP/1.0) the URI's authority is sent as Host (RFC 9112 §3.2.2).
 * Only http:// — TLS from the app would be opaque to the sidecar.
 */
function absoluteForm(head: Http1Head): { authority: string; path: string } | ProxyError {
  const target = head.target;
  if (!target.startsWith('http://')) {
    return new ProxyError('MESHLET_BAD_REQUEST', `unsupported request target ${JSON.stringify(target.slice(0, 100))}: only origin-form or http:// absolute-form`);
  }
  const slash = target.indexOf('/', 7);
  const authority = slash === -1 ? target.slice(7) : target.slice(7, slash);
  const path = slash === -1 ? '/' : target.slice(slash);
  const host = head.authority;
  if (host === '') {
    if (authority !== '') head.forward.headers.push('host', authority);
  } else if (!sameHttpAuthority(host, authority)) {
    return malformedRequest(`Host ${quoted(host)} disagrees with the absolute-form target's authority ${quoted(authority)}; RFC 9112 §3.2.2`, true);
  }
  return { authority, path };
}

/** Host and an http:// URI's authority name the same origin: case-insensitive, `:80` implied (RFC 9110 §4.2.3). */
function sameHttpAuthority(a: string, b: string): boolean {
  if (a.length === b.length) return a.toLowerCase() === b.toLowerCase();
  const [shorter, longer] = a.length < b.length ? [a, b] : [b, a];
  return longer.length === shorter.length + 3 && longer.endsWith(':80') && longer.slice(0, -3).toLowerCase() === shorter.toLowerCase();
}
