import { createDiscovery, type Discovery } from '../discovery/create-discovery.ts';
import { originalDstAvailable } from '../proxy/original-dst/original-dst.ts';
import type { Logger } from 'pino';
import type { SidecarConfig } from './sidecar-env.ts';
import type { IdentitySnapshot, SvidSource } from '../identity/svid.ts';
import { AdminServer } from '../admin/admin-server.ts';
import { MeshTls, type TrustLossClosures } from '../tls/mesh-tls.ts';
import { startRevocationEnforcement, type RevocationFeed } from '../identity/revocation/enforce-revocations.ts';
import { formatPolicyError } from '../policy/parse.ts';
import { PolicyStore } from '../policy/store.ts';
import { SidecarMetrics } from '../metrics/sidecar-metrics.ts';
import { RequestLog } from './request-log.ts';
import { DecisionLog, withDecisionLog } from './decision-log.ts';
import { InboundProxy } from '../proxy/inbound/inbound-proxy.ts';
import { OutboundProxy } from '../proxy/outbound/outbound-proxy.ts';
import { DestinationPolicy } from '../proxy/outbound/destination-policy.ts';
import { OpaqueTcpProxy } from '../proxy/tcp/opaque-inbound.ts';
import { OpaqueTcpOutbound } from '../proxy/tcp/opaque-outbound.ts';
import { DecidedConnections } from '../proxy/tcp/decided-connections.ts';
import type { ProxyObserver } from '../proxy/proxy-observer.ts';
import { CatchAllListener } from '../proxy/tcp/catch-all.ts';
import { ConnectionRegistry } from '../proxy/connection-registry.ts';
import { resolveProxySettings, type ProxySettings } from '../proxy/config.ts';
import { createIdentitySource } from './identity-source.ts';
import { withFederation } from '../identity/federation/federated-source.ts';
import { readPodLabels } from './pod-labels.ts';
import { PolicyAuthorizer } from './policy-authorizer.ts';
import { destinationConfig, egressRules } from './destinations.ts';
import { KERNEL_HAS_IPV6, sidecarConnectionGuards, type SidecarGuards } from './connection-guards.ts';

/**
 * Where the inbound listeners (app ports, opaque TCP, catch-all) bind. With IPv6 in the kernel:
 * `::`, dual-stack (IPv4 callers show as ::ffff:a.b.c.d), because ip6tables REDIRECTs an IPv6
 * caller to [pod IPv6]:port, which a 0.0.0.0 listener never accepts. Without IPv6 (no
 * /proc/net/if_inet6, or not Linux): 0.0.0.0, since binding :: would fail.
 */
const INBOUND_LISTEN_HOST = KERNEL_HAS_IPV6 ? '::' : '0.0.0.0';

/**
 * `meshlet sidecar`: every piece of the data plane, wired from one validated config.
 *
 *   identity source -> MeshTls (rotations swap contexts in place)
 *   policy ConfigMap -> PolicyStore (hot reload, last good) -> PolicyAuthorizer
 *   inbound listeners (one per app port) -> authorize -> app on loopback
 *   outbound listener (iptables target / HTTP_PROXY) -> mTLS to the peer sidecar
 *   admin port: /live /ready /metrics /connections /app-health/… /shutdown
 *
 * Start order matters: the admin port comes up first (so kubelet sees /live and a 503
 * /ready with the reason while the SVID is fetched), listeners bind only once an SVID and a
 * policy are loaded, and /ready turns 200 last — the native sidecar's startupProbe holds the
 * app until then.
 */
export interface SidecarDependencies {
  logger: Logger;
  /** Default: the source MESHLET_IDENTITY_SOURCE names. Tests and the demo pass their own. */
  source?: SvidSource;
  metrics?: SidecarMetrics;
}

export interface SidecarPorts {
  admin: number;
  outbound: number;
  inbound: { listenPort: number; appPort: number }[];
}

export class Sidecar {
  readonly config: Readonly<SidecarConfig>;
  readonly metrics: SidecarMetrics;
  readonly connections: ConnectionRegistry;
  readonly #log: Logger;
  readonly #requestLog: RequestLog;
  readonly #settings: ProxySettings;
  readonly #admin: AdminServer;
  /** Connection caps per listener, fitted to the open-files limit (issue 11 item 1). */
  readonly #guards: SidecarGuards;
  #source: SvidSource | undefined;
  #tls: MeshTls | undefined;
  /** MESHLET_REVOCATION_LIST (docs/revocation.md); undefined when unset. */
  #revocations: RevocationFeed | undefined;
  #discovery: Discovery | undefined;
  #policy: PolicyStore | undefined;
  #inbound: InboundProxy | undefined;
  #outbound: OutboundProxy | undefined;
  #opaque: OpaqueTcpProxy | undefined;
  #opaqueOut: OpaqueTcpOutbound | undefined;
  #catchAll: CatchAllListener | undefined;
  #listenersBound = false;
  #stopping: Promise<void> | undefined;
  #svidError: string | undefined;
  readonly #detach: (() => void)[] = [];
  readonly #deps: SidecarDependencies;
  /** Resolves when the sidecar has stopped (SIGTERM, /shutdown, or stop()). */
  readonly stopped: Promise<void>;
  #resolveStopped!: () => void;

  constructor(config: Readonly<SidecarConfig>, deps: SidecarDependencies) {
    this.config = config;
    this.#deps = deps;
    this.#log = deps.logger;
    this.#requestLog = new RequestLog(deps.logger, { accessLog: config.accessLog, limits: { linesPerSecond: config.logLimitRate, burst: config.logLimitBurst } });
    this.metrics = deps.metrics ?? new SidecarMetrics();
    this.connections = new ConnectionRegistry((conn) => this.metrics.connectionOpened(conn));
    this.stopped = new Promise((resolve) => (this.#resolveStopped = resolve));
    this.#settings = resolveProxySettings({
      timeouts: {
        connectMs: config.connectTimeoutMs,
        tlsHandshakeMs: config.tlsHandshakeTimeoutMs,
        requestHeadersMs: config.requestHeadersTimeoutMs,
        idleMs: config.idleTimeoutMs,
        drainMs: config.drainTimeoutMs,
        queueWaitMs: config.upstreamQueueTimeoutMs,
        streamIdleMs: config.streamIdleTimeoutMs,
        protocolDetectMs: config.protocolDetectTimeoutMs,
      },
      limits: {
        maxHeaderBytes: config.maxHeaderBytes,
        maxHeaderCount: config.maxHeaders,
        maxConnectionsPerUpstream: config.maxConnectionsPerUpstream,
        maxPendingPerUpstream: config.maxPendingPerUpstream,
        // Unset: resolveProxySettings derives it from maxConnectionsPerUpstream.
        ...(config.maxInFlightPerCaller === undefined ? {} : { maxInFlightPerCaller: config.maxInFlightPerCaller }),
        h2MaxConcurrentStreams: config.h2MaxConcurrentStreams,
        h2MaxPrematureResets: config.h2MaxPrematureResets,
      },
    });
    this.#guards = sidecarConnectionGuards(config, this.metrics.listeners, this.#log);
    this.#admin = new AdminServer({
      guard: this.#guards.admin,
      readiness: () => this.readiness(),
      registry: this.metrics.registry,
      connections: () => this.connections.list(),
      appProbes: config.appProbes,
      appMetrics: config.appMetrics,
      appAddress: config.appAddress,
      connectionsAccess: config.adminConnections,
      requestLog: this.#requestLog,
      // Off unless MESHLET_ADMIN_SHUTDOWN=true: without a hook the endpoint answers 404.
      ...(config.adminShutdown ? { onShutdown: () => void this.stop('admin /shutdown') } : {}),
    });
  }

  /** What /ready reports: 200 only with an SVID loaded, the policy loaded and every listener bound. */
  readiness(): { ready: boolean; checks: Record<string, { ok: boolean; detail?: string }> } {
    const snapshot = this.#source?.current();
    const expired = snapshot !== undefined && snapshot.svid.notAfter.getTime() <= Date.now();
    const svid = snapshot === undefined ? { ok: false, detail: this.#svidError ?? 'no SVID yet' } : expired ? { ok: false, detail: `SVID expired at ${snapshot.svid.notAfter.toISOString()}` } : { ok: true, detail: snapshot.svid.spiffeId.id };
    const policy = this.#policy ? { ok: true, detail: this.#policy.currentHash() ?? `no policy: default ${this.config.defaultPolicy}` } : { ok: false, detail: 'policy not loaded yet' };
    const listeners = { ok: this.#listenersBound && this.#stopping === undefined, detail: this.#stopping ? 'draining' : this.#listenersBound ? 'bound' : 'not bound yet' };
    return { ready: svid.ok && policy.ok && listeners.ok, checks: { svid, policy, listeners } };
  }

  async start(): Promise<SidecarPorts> {
    const c = this.config;
    const adminAddr = await this.#admin.listen(c.adminPort, c.adminAddress);

    // MESHLET_FEDERATION_BUNDLES (docs/identity-sources.md#federation): foreign trust domains'
    // bundles beside the source's own; unset, the source is used as it is.
    // The source itself is kept apart: MESHLET_REVOCATION_LIST=meshlet-ca asks it for the list.
    const ownSource = this.#deps.source ?? (await createIdentitySource(c));
    const source = (this.#source = withFederation(ownSource, { dir: c.federationBundles, ownTrustDomain: c.trustDomain, registry: this.metrics.registry, logger: this.#log }));
    this.#detach.push(source.onError((err) => {
      this.#svidError = (err as Error).message;
      this.#log.warn({ event: 'identity_error', err }, 'identity source failed; keeping the current SVID');
    }));
    // A federation change is an update too (new bundles, same SVID): only a new certificate is a rotation.
    let lastChain: string | undefined;
    this.#detach.push(source.onUpdate((s: IdentitySnapshot) => {
      if (s.svid.certChainPem !== lastChain) this.#log.info({ event: 'svid_rotated', spiffeId: s.svid.spiffeId.id, notAfter: s.svid.notAfter }, 'SVID rotated');
      lastChain = s.svid.certChainPem;
    }));
    const first = await source.start();
    lastChain ??= first.svid.certChainPem;
    // After start: the first snapshot is start()'s result, not an update event.
    this.#detach.push(this.metrics.followIdentity(source));
    if (first.svid.spiffeId.id !== c.spiffeId) {
      // Our identity comes from the ServiceAccount; an SVID for anything else is a misconfiguration.
      this.#log.warn({ event: 'identity_mismatch', expected: c.spiffeId, got: first.svid.spiffeId.id }, 'the SVID names another identity than this pod\'s ServiceAccount');
    }
    this.#log.info({ event: 'svid_loaded', source: source.kind, spiffeId: first.svid.spiffeId.id, notAfter: first.svid.notAfter }, 'SVID loaded');
    // The revocation list is in force before the first handshake; an invalid one refuses the start.
    const revocations = (this.#revocations = c.revocationList === undefined ? undefined : await startRevocationEnforcement(c.revocationList, { registry: this.metrics.registry, log: this.#log, tls: () => this.#tls, identitySource: ownSource }));
    // With federation, a domain whose bundle is removed loses its open connections too (not only new handshakes).
    const trustLoss = c.federationBundles === '' ? {} : {
      closeOnTrustLoss: true,
      onTrustLost: (closed: readonly TrustLossClosures[]) => {
        for (const d of closed) this.#log.warn({ event: 'federation_peers_closed', trustDomain: d.trustDomain, inboundClosed: d.inbound, outboundClosed: d.outbound }, `trust domain ${d.trustDomain} is no longer trusted: its open connections were closed`);
      },
    };
    const tls = (this.#tls = new MeshTls(source, { sessionResumption: c.tlsSessionResumption === 'on', keyExchange: c.tlsKeyExchange, ...(revocations ? { revoked: revocations } : {}), ...trustLoss }));
    // MESHLET_DISCOVERY=on: what the control plane knows of each destination (docs/discovery.md);
    // undefined when off (grpc-js then never loads).
    const discovery = (this.#discovery = await createDiscovery(c, source));

    const labels = await readPodLabels(c.podLabelsFile);
    const policy = new PolicyStore({
      dir: c.policyDir,
      key: c.policyKey,
      self: { namespace: c.namespace, serviceAccount: c.serviceAccount, labels, trustDomain: c.trustDomain },
      meshDefault: c.defaultPolicy,
      meshClientDefault: c.defaultClientPolicy,
      metrics: this.metrics.policy,
    });
    let policyEverApplied = false;
    // Connections decided once (opaque TCP, TLS passed through, both directions): decided again
    // on every applied policy, the ones now denied closed (docs/policy.md "Reload").
    const decided = new DecidedConnections();
    this.#detach.push(policy.onReload((e) => {
      if (e.result === 'ok') {
        const closed = decided.reconsider();
        if (closed.inbound + closed.outbound > 0) {
          this.metrics.policy.connectionsClosed.inc({ direction: 'inbound' }, closed.inbound);
          this.metrics.policy.connectionsClosed.inc({ direction: 'outbound' }, closed.outbound);
          this.#log.warn({ event: 'policy_connections_closed', hash: e.hash, inboundClosed: closed.inbound, outboundClosed: closed.outbound }, 'the new policy denies connections that were open: they were closed');
        }
        // Its routes' series exist at 0 from now on (docs/metrics.md, "Series made ahead").
        this.metrics.policyApplied(policy.current(), { requestSeries: c.requestMetrics });
        // `client`: the client entry the outbound now enforces (null: none selects this workload).
        this.#log.info({ event: 'policy_reloaded', hash: e.hash, server: e.server, client: policy.current().client?.name ?? null }, 'policy loaded');
        policyEverApplied = true;
      }
      // No policy mounted and none ever applied is not a rejection: the mesh default applies.
      else if (e.result === 'deleted' && !policyEverApplied) this.#log.info({ event: 'policy_absent', file: `${c.policyDir}/${c.policyKey}`, defaultPolicy: c.defaultPolicy }, `no policy file; the mesh default (${c.defaultPolicy}) applies`);
      else if (e.result !== 'unchanged') this.#log.warn({ event: 'policy_rejected', result: e.result, errors: e.errors?.map(formatPolicyError) }, 'policy not applied; keeping the last good one');
    }));
    await policy.start();
    this.#policy = policy;

    // MESHLET_DECISION_LOG (docs/decision-log.md): the proxies' deciding steps write one line per
    // decision, denials through the same limiter as every caller-triggered line; off: none, and
    // denials keep the short `denied` line.
    const decisionLog = c.decisionLog === 'off'
      ? undefined
      : new DecisionLog(this.#log, { mode: c.decisionLog, allowSample: c.decisionLogAllowSample, limiter: this.#requestLog.limiter, server: () => tls.localId, policyHash: () => policy.currentHash() });
    const authorizer = withDecisionLog(new PolicyAuthorizer(policy, (facts, decision) => {
      this.metrics.decided(facts.peer, decision);
      if (decision.decision === 'deny' && decisionLog === undefined) {
        this.#requestLog.denied({ direction: 'inbound', caller: facts.peer, route: decision.route, reason: decision.reason, code: decision.code, ...('method' in facts ? { method: facts.method, path: facts.path } : {}), port: facts.port });
      }
    }), decisionLog);
    const httpPorts = c.inboundPorts.filter((p) => p.protocol !== 'tcp');
    // MESHLET_REQUEST_METRICS=false: the proxies get no per-request hook at all (nothing to call),
    // unless MESHLET_ACCESS_LOG=true asks for a line per request.
    const observer: ProxyObserver = this.#requestLog.withAccessLog(c.requestMetrics ? this.metrics.observer : { refused: this.metrics.observer.refused, handshakeFailed: this.metrics.observer.handshakeFailed });
    this.#inbound = new InboundProxy({
      tls,
      authorizer,
      normalizer: authorizer,
      ports: httpPorts.map((p) => ({ listenPort: p.listenPort, appPort: p.appPort, protocol: p.protocol === 'grpc' ? ('grpc' as const) : ('http' as const), permissive: p.permissive })),
      appHost: c.appAddress,
      listenHost: INBOUND_LISTEN_HOST,
      settings: this.#settings,
      registry: this.connections,
      observer,
      guard: this.#guards.inbound,
      // A meshed caller's own TLS to an HTTP port (discovery carries it in mTLS without ALPN).
      opaque: { authorizer, observer: this.metrics.observer, decided },
    });
    // The client side of the same compiled policy (docs/policy.md "Clients"): read per request,
    // so a reload reaches the outbound as it reaches the inbound; null = nothing to decide.
    const clientPolicy = new DestinationPolicy({
      current: () => policy.current().client,
      series: (d) => this.metrics.policy.clientSeries(d),
      self: () => tls.localId,
      decisionLog,
    });
    this.#outbound = new OutboundProxy({
      tls,
      destinations: destinationConfig(c),
      listenHost: '127.0.0.1',
      // ip6tables sends the app's IPv6 TCP to [::1]:outboundPort.
      ...(INBOUND_LISTEN_HOST === '::' ? { ipv6LoopbackHost: '::1' } : {}),
      listenPort: c.outboundPort,
      settings: this.#settings,
      registry: this.connections,
      observer,
      guard: this.#guards.outbound,
      // Only connections iptables redirected are classified; an app using the listener as
      // HTTP_PROXY (explicit mode) is HTTP as always.
      transparent: { passthrough: c.outboundPassthrough, egress: egressRules(c), serverFirstPorts: c.serverFirstPorts, ...(discovery ? { discovery } : {}) },
      tcpObserver: this.metrics.observer,
      clientPolicy,
      decided,
    });
    const addon = originalDstAvailable();
    if (!addon.ok) this.#log.warn({ event: 'original_dst_unavailable', reason: addon.reason }, "transparent interception of the app's own TLS and non-HTTP TCP is off: the original-destination addon did not load (HTTP is not affected)");
    this.#opaqueOut = new OpaqueTcpOutbound({
      tls,
      listeners: c.outboundTcp.map((m) => ({
        listenPort: m.listenPort,
        destination: { host: m.host, port: m.port, expected: m.spiffeId ? { spiffeId: m.spiffeId } : { trustDomains: c.acceptedTrustDomains } },
      })),
      settings: this.#settings,
      registry: this.connections,
      observer: this.metrics.observer,
      guard: this.#guards.outbound_tcp,
      clientPolicy,
      decided,
    });
    // Opaque TCP ports: one decision per connection (caller and port), bytes spliced to the app.
    this.#opaque = new OpaqueTcpProxy({
      tls,
      authorizer,
      ports: c.inboundPorts.filter((p) => p.protocol === 'tcp').map((p) => ({ listenPort: p.listenPort, appPort: p.appPort })),
      appHost: c.appAddress,
      listenHost: INBOUND_LISTEN_HOST,
      settings: this.#settings,
      registry: this.connections,
      observer: this.metrics.observer,
      guard: this.#guards.inbound_tcp,
      decided,
    });
    // Every undeclared port lands here (iptables) and is reset: nothing reaches the app around us.
    this.#catchAll = new CatchAllListener({ port: c.inboundCatchAllPort, host: INBOUND_LISTEN_HOST, observer: this.metrics.observer, guard: this.#guards.catch_all });
    const [, outboundBound] = await Promise.all([this.#inbound.start(), this.#outbound.start(), this.#opaque.start(), this.#opaqueOut.start(), this.#catchAll.start()]);
    if (INBOUND_LISTEN_HOST === '::' && !outboundBound.ipv6Loopback) {
      this.#log.info({ event: 'outbound_ipv6_loopback_unavailable' }, 'no ::1 in this network namespace: the outbound listener serves 127.0.0.1 only');
    }
    this.#listenersBound = true;
    const ports: SidecarPorts = { admin: adminAddr.port, outbound: this.#outbound.boundPort(), inbound: [...this.#inbound.boundPorts(), ...this.#opaque.boundPorts()] };
    this.#log.info({ event: 'ready', spiffeId: tls.localId, ports }, 'meshlet sidecar ready');
    return ports;
  }

  /**
   * Graceful stop: /ready turns 503 at once (endpoints drop the pod), listeners stop
   * accepting, in-flight requests get up to MESHLET_DRAIN_TIMEOUT, then everything closes.
   */
  stop(why = 'stop'): Promise<void> {
    this.#stopping ??= (async () => {
      this.#log.info({ event: 'draining', why, drainTimeoutMs: this.config.drainTimeoutMs }, 'draining');
      const cut = await Promise.all([this.#inbound?.drain() ?? 0, this.#outbound?.drain() ?? 0, this.#opaque?.drain() ?? 0, this.#opaqueOut?.drain() ?? 0, this.#catchAll?.close().then(() => 0) ?? 0]);
      const forced = cut.reduce((a, b) => a + b, 0);
      for (const d of this.#detach.splice(0)) d();
      this.#policy?.close();
      this.#revocations?.close();
      this.#tls?.close();
      await this.#discovery?.close();
      await this.#source?.close();
      await this.#admin.close();
      this.#requestLog.close();
      this.#log.info({ event: 'stopped', connectionsCut: forced }, 'meshlet sidecar stopped');
      this.#resolveStopped();
    })();
    return this.#stopping;
  }
}
