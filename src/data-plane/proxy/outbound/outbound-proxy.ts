import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { resolveProxySettings, type ProxySettings } from '../config.ts';
import { ConnectionRegistry, type TrackedConnection } from '../connection-registry.ts';
import { HttpServing } from '../http/http-serving.ts';
import type { NextHopContext } from '../http/next-hop-socket.ts';
import { detectH2c } from '../h2/detect-h2c.ts';
import { RequestPipeline } from '../pipeline/request-pipeline.ts';
import type { ClientTls } from '../tls-dependency.ts';
import type { ProxyObserver } from '../proxy-observer.ts';
import type { DestinationConfig } from './destination-table.ts';
import { RouteStep } from './route.ts';
import { passThrough, type PassthroughContext } from './passthrough.ts';
import { meshTcp } from './mesh-tcp.ts';
import { EgressRules } from './egress-rules.ts';
import { addressOf, factsFromDiscovery, type ConnectionVerdict, type DestinationPolicy } from './destination-policy.ts';
import { UNMESHED_PEER } from '../../metrics/label-values.ts';
import { decide, type OutboundDecision } from '../../discovery/decide.ts';
import type { Resolution } from '../../discovery/resolution.ts';
import { detectProtocol } from '../detect/first-bytes.ts';
import { SERVER_FIRST_PORTS } from '../detect/port-protocol.ts';
import { originalDestination, type OriginalDestination } from '../original-dst/original-dst.ts';
import type { TcpObserver } from '../tcp/tcp-refusals.ts';
import type { DecidedConnections } from '../tcp/decided-connections.ts';
import { listenOn } from '../../../common/net/listen.ts';
import { ConnectionGuard, DEFAULT_MAX_CONNECTIONS } from '../../../common/net/connection-guard.ts';

/**
 * The app's side: a plain listener its outbound traffic reaches, either by transparent
 * redirect (origin-form request, routed by Host / :authority) or because the app uses it as
 * HTTP_PROXY (absolute-form `GET http://host:port/path`, routed by the URI's authority).
 * The app may speak HTTP/1.1 or h2c (HTTP/2 with prior knowledge: what gRPC clients do to a
 * plaintext target); the first bytes of a connection say which.
 *
 * The outbound arrangement of the pipeline (docs/architecture.md): accept (guarded loopback
 * listener) → detect (h2c preface or HTTP/1.1) → RequestPipeline: head → observe → route
 * (route.ts) → forward to the destination (a peer sidecar over mTLS, or a configured
 * plaintext destination).
 */
export interface OutboundProxyOptions {
  readonly tls: ClientTls;
  readonly destinations: DestinationConfig;
  /** Default 127.0.0.1:15001 — the app's traffic only (the sidecar's own uid is not redirected). */
  readonly listenHost?: string;
  readonly listenPort?: number;
  /**
   * A second loopback address on the same port, for the app's IPv6 traffic: ip6tables
   * REDIRECTs a locally generated connection to [::1]:port. Never `::` — that would make the
   * outbound proxy a relay open to the network in explicit mode. Skipped (resolved false by
   * start()) when the address does not exist (IPv6 disabled on lo).
   */
  readonly ipv6LoopbackHost?: string;
  readonly settings?: ProxySettings;
  readonly registry?: ConnectionRegistry;
  readonly observer?: ProxyObserver;
  /**
   * Cap and refusal counting of the listener (src/common/net/connection-guard.ts); default:
   * DEFAULT_MAX_CONNECTIONS, refusals not counted. The first bytes must come within
   * timeouts.requestHeadersMs.
   */
  readonly guard?: ConnectionGuard;
  /**
   * Transparent interception (the iptables REDIRECT of the app's outbound TCP): each connection's
   * original destination is read (original-dst/, the native addon) and its first bytes decide
   * — HTTP/1.x and HTTP/2 go through the request pipeline as always; the app's own TLS and any
   * other protocol are passed through to the original destination untouched (passthrough.ts),
   * or refused with `passthrough: 'deny'`. Off (the default for a bare OutboundProxy, and in
   * explicit HTTP_PROXY mode): every connection is HTTP. A connection that was not redirected
   * (the app dialled the listener itself) is HTTP either way.
   */
  readonly transparent?: {
    readonly passthrough: 'allow' | 'deny';
    /** Allow/deny rules by host, CIDR and port over `passthrough` (egress-rules.ts); absent: `passthrough` alone. */
    readonly egress?: EgressRules;
    readonly serverFirstPorts?: ReadonlySet<number>;
    /**
     * The control plane's discovery (src/data-plane/discovery/), asked for what nothing
     * configured names: for the app's own TLS and other TCP, where the original destination
     * stands — meshed (carried over mTLS to it, mesh-tcp.ts), unmeshed (passed through),
     * outside (egress: `passthrough`), or unknown (refused, MESHLET_UNKNOWN_DESTINATION); for
     * HTTP, the same for the Host it names (route.ts). Absent: TLS and TCP are egress, HTTP
     * follows the configured routes only.
     */
    readonly discovery?: { resolve(destination: { host: string; port: number }): Resolution | Promise<Resolution> };
    /** Reads a connection's original destination; default the native addon. Tests replace it where no iptables redirect can run. */
    readonly originalDestination?: (socket: net.Socket) => OriginalDestination | null;
  };
  /** Hears passthrough connections and their refusals (metrics). */
  readonly tcpObserver?: PassthroughContext['observer'];
  /**
   * The client side of the policy (destination-policy.ts): every request, and every connection
   * of the app's own TLS or opaque TCP, is decided after routing; absent: nothing is decided.
   */
  readonly clientPolicy?: DestinationPolicy;
  /**
   * Where the app's own TLS and opaque TCP connections the client policy let through wait to be
   * decided again when the policy changes (the sidecar's; docs/policy.md "Reload"); absent: decided once.
   */
  readonly decided?: DecidedConnections;
}

export const DEFAULT_OUTBOUND_PORT = 15001;

export class OutboundProxy {
  readonly registry: ConnectionRegistry;
  readonly #opts: OutboundProxyOptions;
  readonly #settings: ProxySettings;
  readonly #hopContext: NextHopContext;
  readonly #route: RouteStep;
  readonly #egress: EgressRules | null;
  readonly #pipeline: RequestPipeline;
  readonly #front: net.Server;
  /** The [::1] twin of #front (ipv6LoopbackHost), same handler, same guard. */
  readonly #front6: net.Server | null;
  readonly #serving: HttpServing;
  readonly #tracked = new WeakMap<Duplex, TrackedConnection>();
  readonly #guard: ConnectionGuard;
  #draining = false;

  constructor(opts: OutboundProxyOptions) {
    this.#opts = opts;
    this.#settings = opts.settings ?? resolveProxySettings();
    this.registry = opts.registry ?? new ConnectionRegistry();
    this.#hopContext = { settings: this.#settings, registry: this.registry, direction: 'outbound' };
    const discovery = opts.transparent?.discovery;
    this.#egress = opts.transparent === undefined ? null : (opts.transparent.egress ?? new EgressRules(opts.transparent.passthrough));
    const egress = this.#egress;
    this.#route = new RouteStep(opts.destinations, opts.tls, this.#hopContext, (err) => this.#opts.observer?.handshakeFailed?.('outbound', err), discovery && egress ? { resolve: (d) => discovery.resolve(d), egress } : undefined, opts.clientPolicy);
    const pipeline = new RequestPipeline({
      direction: 'outbound',
      settings: this.#settings,
      hopContext: this.#hopContext,
      observer: opts.observer,
      decide: this.#route,
      draining: () => this.#draining,
    });
    this.#pipeline = pipeline;
    this.#serving = new HttpServing(this.#settings, {
      request: (req, res) => pipeline.request(req, res, this.#tracked.get(req.socket)),
      upgrade: (req, socket, head) => pipeline.upgrade(req, socket, head, this.#tracked.get(req.socket)),
      refused: pipeline.answers.counted,
    });
    this.#guard = opts.guard ?? new ConnectionGuard({ listener: 'outbound', maxConnections: DEFAULT_MAX_CONNECTIONS });
    this.#front = this.#guard.protect(net.createServer({ noDelay: true }, (socket) => this.#onConnection(socket)));
    this.#front6 = opts.ipv6LoopbackHost === undefined ? null : this.#guard.protect(net.createServer({ noDelay: true }, (socket) => this.#onConnection(socket)));
  }

  /** Binds the listener (and its IPv6 loopback twin when asked; false when that address does not exist). */
  async start(): Promise<{ ipv6Loopback: boolean }> {
    await listenOn(this.#front, this.#opts.listenPort ?? DEFAULT_OUTBOUND_PORT, this.#opts.listenHost ?? '127.0.0.1');
    if (this.#front6 === null) return { ipv6Loopback: false };
    try {
      await listenOn(this.#front6, this.boundPort(), this.#opts.ipv6LoopbackHost!);
      return { ipv6Loopback: true };
    } catch (err) {
      // No ::1 (IPv6 disabled on lo): no IPv6 connection can be redirected here either.
      if ((err as NodeJS.ErrnoException).code === 'EADDRNOTAVAIL' || (err as NodeJS.ErrnoException).code === 'EAFNOSUPPORT') return { ipv6Loopback: false };
      this.#front.close();
      throw err;
    }
  }

  boundPort(): number {
    return (this.#front.address() as net.AddressInfo).port;
  }

  get draining(): boolean {
    return this.#draining;
  }

  async drain(): Promise<number> {
    this.#draining = true;
    if (this.#front6?.listening) this.#front6.close();
    const cut = await this.#serving.drain(this.#front, this.#settings.timeouts.drainMs);
    await Promise.all(Array.from(this.#route.destinations(), (d) => d.close()));
    return cut;
  }

  /**
   * The accept → detect step of transparent interception. With discovery, the original
   * destination is looked up first (a cached answer costs nothing), so a port its Service
   * declares server-first or plain TCP (appProtocol, port name: detect/port-protocol.ts) skips
   * the wait, as does a known server-first port (MESHLET_SERVER_FIRST_PORTS); otherwise the
   * first bytes decide within timeouts.protocolDetectMs (a client silent that long is waiting
   * for its server: opaque). HTTP goes to the pipeline; TLS and opaque TCP where discovery's
   * answer says (#act), or to the original destination untouched without discovery.
   */
  #classify(socket: net.Socket, conn: TrackedConnection, dst: OriginalDestination): void {
    const setupDone = this.#guard.deadline(socket, this.#settings.timeouts.requestHeadersMs);
    const discovery = this.#opts.transparent!.discovery;
    if (discovery === undefined) return this.#detect(socket, conn, dst, setupDone, undefined);
    const answer = discovery.resolve({ host: dst.address, port: dst.port });
    if (answer instanceof Promise) void answer.then((r) => this.#detect(socket, conn, dst, setupDone, r));
    else this.#detect(socket, conn, dst, setupDone, answer);
  }

  #detect(socket: net.Socket, conn: TrackedConnection, dst: OriginalDestination, setupDone: () => void, answer: Resolution | undefined): void {
    if (socket.destroyed) return;
    const transparent = this.#opts.transparent!;
    const { requestHeadersMs, protocolDetectMs } = this.#settings.timeouts;
    const pass = (protocol: 'tls' | 'opaque', sni: string | null): void => {
      setupDone();
      this.#act(socket, conn, dst, protocol, sni, answer, answer === undefined ? EGRESS : decide(answer));
    };
    const declared = answer !== undefined && 'protocol' in answer ? answer.protocol : undefined;
    if (declared === 'server-first' || declared === 'tcp' || (transparent.serverFirstPorts ?? SERVER_FIRST_PORTS).has(dst.port)) return pass('opaque', null);
    void detectProtocol(socket, Math.min(protocolDetectMs, requestHeadersMs)).then((d) => {
      if (socket.destroyed) return;
      if (d.protocol === 'h2') {
        setupDone();
        this.#serving.serveH2(socket, (stream, _headers, _flags, raw) => this.#pipeline.stream(stream, raw, conn));
      } else if (d.protocol === 'http1') {
        setupDone();
        this.#tracked.set(socket, conn);
        this.#serving.serveHttp1(socket);
      } else if (d.reason === 'closed') {
        socket.destroy();
      } else {
        pass(d.protocol, d.sni ?? null);
      }
    });
  }

  /** What discovery's answer means for one TLS or opaque connection (docs/discovery.md, the sidecar's table). */
  #act(socket: net.Socket, conn: TrackedConnection, dst: OriginalDestination, protocol: 'tls' | 'opaque', sni: string | null, answer: Resolution | undefined, d: OutboundDecision): void {
    if (socket.destroyed) return;
    const observer = this.#opts.tcpObserver;
    const passCtx = { registry: this.registry, connectMs: this.#settings.timeouts.connectMs, ...(observer ? { observer } : {}) };
    // The client policy, once per connection, after routing and (egress) the env rules: the SNI
    // is the name the app used (plain TCP names none), the original destination the address.
    // The app writes its SNI freely, so a name is a fact only where the name is what gets dialled:
    // an allow that rests on it alone makes the sidecar dial that name (`allow-by-name`, below);
    // a meshed destination is dialled at the address discovery vouched for, so there the SNI is no
    // fact at all (identity, Service and address decide).
    const policy = this.#opts.clientPolicy;
    const name = sni === null ? null : sni.toLowerCase();
    // An allowed connection is decided again, with the same facts, whenever the policy changes.
    const decided = this.#opts.decided;
    const decideByPolicy = (trustsName: boolean): ConnectionVerdict => {
      if (policy === undefined) return 'allow';
      const facts = { ...factsFromDiscovery(answer, d, addressOf(dst.address), dst.port), name: trustsName ? name : null };
      const verdict = policy.connection(facts);
      if (verdict === 'deny') {
        observer?.refused?.('outbound', 'MESHLET_DENIED');
        socket.destroy();
      } else {
        decided?.add(socket, 'outbound', () => policy.reconsider(facts, verdict === 'allow-by-name'));
      }
      return verdict;
    };
    /** The original destination, or — when the client policy allowed the connection for its SNI only — that name. */
    const dialled = (verdict: ConnectionVerdict): OriginalDestination => (verdict === 'allow-by-name' && name !== null ? { address: name, port: dst.port, family: 4 } : dst);
    switch (d.action) {
      case 'mtls':
        if (decideByPolicy(false) === 'deny') return;
        return meshTcp(socket, conn, { address: dst.address, port: dst.port, identities: d.identities }, this.#opts.tls, this.#hopContext, observer);
      case 'endpoints': {
        if (decideByPolicy(false) === 'deny') return;
        // A Service with meshed and unmeshed endpoints: dial one endpoint ourselves (kube-proxy
        // would choose after our mTLS-or-not decision), spread at random.
        const e = d.endpoints[Math.floor(Math.random() * d.endpoints.length)]!;
        if (e.then.action === 'mtls') return meshTcp(socket, conn, { address: e.address, port: e.port, identities: e.then.identities }, this.#opts.tls, this.#hopContext, observer);
        return passThrough(socket, conn, { address: e.address, port: e.port, family: e.address.includes(':') ? 6 : 4 }, protocol, sni, { ...passCtx, peer: UNMESHED_PEER });
      }
      case 'plaintext': {
        const verdict = decideByPolicy(true);
        if (verdict === 'deny') return;
        return passThrough(socket, conn, dialled(verdict), protocol, sni, { ...passCtx, peer: UNMESHED_PEER });
      }
      case 'egress': {
        const env = this.#egress!.decide({ address: dst.address, port: dst.port, name: sni });
        if (env.action === 'deny') {
          observer?.refused?.('outbound', 'MESHLET_PASSTHROUGH_DENIED');
          socket.destroy();
          return;
        }
        if (env.byName === true && name !== null) {
          // The operator's rules allow the name only: the name is what gets dialled, and the
          // client policy decides on it as dialled (no address: the app's choice is not used).
          if (policy !== undefined) {
            const facts = { ...factsFromDiscovery(answer, d, null, dst.port), name };
            if (policy.connection(facts, true) === 'deny') {
              observer?.refused?.('outbound', 'MESHLET_DENIED');
              socket.destroy();
              return;
            }
            decided?.add(socket, 'outbound', () => policy.reconsider(facts, true));
          }
          return passThrough(socket, conn, { address: name, port: dst.port, family: 4 }, protocol, sni, passCtx);
        }
        // The env rules first (the operator's), then the client policy (the owner's): both must allow.
        const verdict = decideByPolicy(true);
        if (verdict === 'deny') return;
        return passThrough(socket, conn, dialled(verdict), protocol, sni, passCtx);
      }
      case 'refuse':
        observer?.refused?.('outbound', 'MESHLET_UNKNOWN_DESTINATION');
        socket.destroy();
        return;
    }
  }

  #onConnection(socket: net.Socket): void {
    this.#serving.accept(socket);
    const conn = this.registry.track('outbound', 'accepted', socket);
    socket.on('error', () => socket.destroy());
    const transparent = this.#opts.transparent;
    const redirected = transparent === undefined ? null : transparent.originalDestination ? transparent.originalDestination(socket) : redirectedTo(socket);
    if (redirected !== null) return this.#classify(socket, conn, redirected);
    // A silent connection is closed by the guard; bytes end its deadline (then the HTTP/1.1 head
    // timeout or the HTTP/2 idle timeout applies).
    const detected = this.#guard.deadline(socket, this.#settings.timeouts.requestHeadersMs);
    void detectH2c(socket, this.#settings.timeouts.requestHeadersMs).then((protocol) => {
      if (socket.destroyed) return;
      if (socket.bytesRead > 0) detected();
      if (protocol === 'h2c') {
        this.#serving.serveH2(socket, (stream, _headers, _flags, raw) => this.#pipeline.stream(stream, raw, conn));
      } else {
        this.#tracked.set(socket, conn);
        this.#serving.serveHttp1(socket);
      }
    });
  }
}

/**
 * Where a transparently redirected connection was going, or null when the app dialled the
 * listener itself (explicit mode) or the kernel has no record of a redirect. An addon that
 * cannot load makes every connection HTTP (the sidecar said so at start).
 */
function redirectedTo(socket: net.Socket): OriginalDestination | null {
  let dst: OriginalDestination | null;
  try {
    dst = originalDestination(socket);
  } catch {
    return null;
  }
  if (dst === null) return null;
  const local = socket.localAddress?.replace(/^::ffff:/, '');
  return dst.port === socket.localPort && dst.address === local ? null : dst;
}

/** No discovery: the app's own TLS and other TCP are egress (passthrough rules). */
const EGRESS: OutboundDecision = { action: 'egress' };
