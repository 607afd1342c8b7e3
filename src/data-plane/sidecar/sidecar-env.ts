import { parseServerFirstPorts, SERVER_FIRST_PORTS } from '../proxy/detect/port-protocol.ts';
import { parseAppMetricsTarget, type AppMetricsTarget } from '../admin/app-metrics.ts';
import { DEFAULT_TRUST_DOMAIN, workloadSpiffeId, parseSpiffeId } from '../../common/identity/spiffe-id.ts';
import { CLIENT_MESH_DEFAULTS, DEFAULT_POLICIES, type ClientMeshDefault, type DefaultPolicy, type PortProtocol } from '../policy/types.ts';
import { MESH_CLIENT_DEFAULT_POLICY, MESH_DEFAULT_POLICY } from '../policy/default-policy.ts';
import type { InboundPort } from '../proxy/inbound/inbound-proxy.ts';
import { DEFAULT_PROXY_SETTINGS } from '../proxy/config.ts';
import type { LogLevel } from '../../common/log/logger.ts';
import { DEFAULT_LOG_LIMITS, TOTAL_FACTOR } from '../../common/log/log-limiter.ts';
import { DECISION_LOG_MODES, type DecisionLogMode } from './decision-log.ts';
import { ADMIN_MAX_CONNECTIONS } from '../admin/admin-server.ts';
import { formatDuration } from '../../common/config/duration.ts';
import { absolutePath, bool, deepFreeze, dnsDomain, durationField, EnvReader, FieldError, hostPort, k8sName, list, LOG_LEVEL_ENV, oneOf, port, positiveInt, text, trustDomain, type Env, type EnvVar } from '../../common/config/env.ts';
import { parseCidr } from '../discovery/cluster-scope.ts';
import { DEFAULT_KEY_EXCHANGE, KEY_EXCHANGE_MODES, type KeyExchangeMode } from '../tls/key-exchange.ts';

/**
 * The sidecar's configuration: the contract between the injector (which writes these
 * variables into the pod) and `meshlet sidecar` (which reads them). Every variable is
 * listed here once, with its default and description; the README's table and
 * `meshlet sidecar --help` are generated from this list. The proxy's timeouts and limits
 * take their defaults from DEFAULT_PROXY_SETTINGS (src/data-plane/proxy/config.ts), the one place
 * they are written.
 */

export const IDENTITY_SOURCES = ['meshlet-ca', 'workload-api', 'files'] as const;
export type IdentitySourceKind = (typeof IDENTITY_SOURCES)[number];

/** A destination outside the mesh that may be reached in plaintext: host, CIDR, with optional port. */
export interface PlaintextDestination {
  host?: string;
  cidr?: string;
  port?: number;
}

export interface SidecarConfig {
  trustDomain: string;
  namespace: string;
  serviceAccount: string;
  podName: string;
  /** spiffe://<td>/ns/<ns>/sa/<sa>: what this pod's SVID must say. */
  spiffeId: string;
  podLabelsFile: string;

  identitySource: IdentitySourceKind;
  caAddress: { host: string; port: number };
  trustBundleFile: string;
  tokenFile: string;
  workloadApiSocket: string;
  svidDir: string;
  /** files / meshlet-ca: the mounted directory of federated trust domains' bundles; '' = no federation. */
  federationBundles: string;

  inboundPorts: InboundPort<PortProtocol>[];
  inboundCatchAllPort: number;
  appAddress: string;

  outboundPort: number;
  /** HOST:PORT (as the app names it) -> where that destination's sidecar listens, when not the name itself. */
  destinationAddresses: Map<string, { host: string; port: number }>;
  destinationIdentities: Map<string, string>;
  plaintextDestinations: PlaintextDestination[];
  acceptedTrustDomains: string[];
  /** Opaque (non-HTTP) outbound TCP: local listener -> a peer sidecar's tcp port, over mTLS. */
  outboundTcp: OutboundTcpMapping[];

  adminPort: number;
  adminAddress: string;
  appProbes: Record<string, AppProbe>;
  /** The app's own metrics (port + path) merged into /metrics/merged; null: not merged. */
  appMetrics: AppMetricsTarget | null;
  /** Who may read /connections: loopback callers only (default) or the network too. */
  adminConnections: 'loopback' | 'network';
  /** POST /shutdown from loopback; off by default (an SSRF in the app must not stop the sidecar). */
  adminShutdown: boolean;

  policyDir: string;
  policyKey: string;
  defaultPolicy: DefaultPolicy;
  /** The client side when no policy client selects the workload (docs/policy.md "Clients"): allow leaves outbound unrestricted by policy. */
  defaultClientPolicy: ClientMeshDefault;
  /** The mounted revocation list (docs/revocation.md); undefined: no revocation check at all. */
  revocationList: string | undefined;

  connectTimeoutMs: number;
  tlsHandshakeTimeoutMs: number;
  /** TLS 1.3 session resumption between sidecars, both directions (docs/tls.md "Session resumption"). */
  tlsSessionResumption: 'on' | 'off';
  /** TLS 1.3 key exchange groups between sidecars, both directions (docs/tls.md "Key exchange"). */
  tlsKeyExchange: KeyExchangeMode;
  requestHeadersTimeoutMs: number;
  idleTimeoutMs: number;
  drainTimeoutMs: number;
  maxHeaderBytes: number;
  maxHeaders: number;
  /** Overload and fairness (issue 11 item 5/6; docs/proxy.md "Timeouts and limits"). */
  maxConnectionsPerUpstream: number;
  maxPendingPerUpstream: number;
  upstreamQueueTimeoutMs: number;
  /** Unset: half of maxConnectionsPerUpstream. */
  maxInFlightPerCaller: number | undefined;
  streamIdleTimeoutMs: number;
  protocolDetectTimeoutMs: number;
  /** The app's own TLS and non-HTTP TCP, transparently redirected: passed through to its destination (allow) or refused (deny). */
  outboundPassthrough: 'allow' | 'deny';
  /** Egress rules over outboundPassthrough: deny wins, then allow, then the default. */
  egressAllow: PlaintextDestination[];
  egressDeny: PlaintextDestination[];
  /** Transparent outbound: ports whose connections skip detection (server speaks first). */
  serverFirstPorts: ReadonlySet<number>;
  h2MaxConcurrentStreams: number;
  h2MaxPrematureResets: number;
  /** Connection exhaustion (issue 11 item 1; docs/proxy.md "Connection limits"): caps per listener and the descriptor reserve. */
  maxInboundConnections: number;
  maxOutboundConnections: number;
  maxAdminConnections: number;
  fdReserve: number;

  /** Discovery (docs/discovery.md "The sidecar client"): ask the identity service which destinations are meshed. Not yet used by the proxies. */
  discovery: 'off' | 'on';
  /** How long a meshed or mixed answer is used. */
  discoveryTtlMs: number;
  /** How long an unmeshed or external answer is used. */
  discoveryUnmeshedTtlMs: number;
  discoveryTimeoutMs: number;
  discoveryCacheSize: number;
  clusterDomain: string;
  podCidrs: string[];
  serviceCidrs: string[];

  logLevel: LogLevel;
  accessLog: boolean;
  /** The decision log (docs/decision-log.md): off, denials (and audit would-denies, refused paths) only, or allows too. */
  decisionLog: DecisionLogMode;
  /** Share of allowed requests logged when decisionLog is `all`, 0..1 (by trace id when there is one). */
  decisionLogAllowSample: number;
  /** Denial / admin-refusal log lines per second per (event, reason), and the burst. */
  logLimitRate: number;
  logLimitBurst: number;
  requestMetrics: boolean;
}

export interface OutboundTcpMapping {
  listenPort: number;
  host: string;
  port: number;
  /** The exact identity the peer must prove; absent: one of the accepted trust domains. */
  spiffeId?: string;
}

/**
 * An app probe the injector moved to the sidecar's admin port (/app-health/<container>/<kind>):
 * what the sidecar runs against the app over loopback when kubelet asks. `kind` absent means
 * http (the values written before grpc and tcp existed keep working).
 */
export type AppProbe = AppHttpProbe | AppGrpcProbe | AppTcpProbe;

interface AppProbeCommon {
  port: number;
  /** The original probe's timeoutSeconds (absent: kubelet's default, 1 s): the sidecar answers before kubelet gives up. */
  timeoutSeconds?: number;
}

/** GET <scheme>://127.0.0.1:<port><path>; the app's status passes through. */
export interface AppHttpProbe extends AppProbeCommon {
  kind?: 'http';
  path: string;
  scheme: 'HTTP' | 'HTTPS';
  headers?: { name: string; value: string }[];
}

/** grpc.health.v1.Health/Check over h2c: 200 only for SERVING. */
export interface AppGrpcProbe extends AppProbeCommon {
  kind: 'grpc';
  /** HealthCheckRequest.service; absent: "" (the server as a whole). */
  service?: string;
}

/** A TCP connect: 200 when it connects. */
export interface AppTcpProbe extends AppProbeCommon {
  kind: 'tcp';
}

/** `APP_PORT[:LISTEN_PORT][/PROTOCOL]`, e.g. `8080/http`, `9090:15101/grpc`, `5432/tcp`. */
function inboundEntry(raw: string): { appPort: number; listenPort?: number; protocol: PortProtocol } {
  const m = /^(\d+)(?::(\d+))?(?:\/(http|grpc|tcp))?$/.exec(raw);
  if (!m) throw new FieldError('must be APP_PORT[:LISTEN_PORT][/http|grpc|tcp]');
  return { appPort: port(m[1]!), ...(m[2] ? { listenPort: port(m[2]) } : {}), protocol: (m[3] ?? 'http') as PortProtocol };
}

/** `host:port=spiffe://…`: the identity the server behind a destination must prove. */
function destinationIdentity(raw: string): [string, string] {
  const eq = raw.indexOf('=');
  if (eq < 0) throw new FieldError('must be HOST:PORT=SPIFFE_ID');
  const dest = raw.slice(0, eq);
  hostPort(dest);
  try {
    return [dest.toLowerCase(), parseSpiffeId(raw.slice(eq + 1)).id];
  } catch (err) {
    throw new FieldError((err as Error).message);
  }
}

/** `orders:8080=127.0.0.1:15100`: dial this address for that destination (local meshes, explicit mode). */
function destinationAddress(raw: string): [string, { host: string; port: number }] {
  const eq = raw.indexOf('=');
  if (eq < 0) throw new FieldError('must be HOST:PORT=ADDRESS:PORT');
  const dest = raw.slice(0, eq);
  hostPort(dest);
  return [dest.toLowerCase(), hostPort(raw.slice(eq + 1))];
}

/**
 * `LISTEN_PORT=HOST:PORT[@SPIFFE_ID]`: the app dials 127.0.0.1:LISTEN_PORT for an opaque TCP
 * destination (Node cannot read a redirected connection's original destination, so non-HTTP
 * outbound needs this explicit mapping; HTTP is routed by Host without it).
 */
function outboundTcpEntry(raw: string): OutboundTcpMapping {
  const m = /^(\d+)=([^@]+)(?:@(.+))?$/.exec(raw);
  if (!m || !/:\d+$/.test(m[2]!)) throw new FieldError('must be LISTEN_PORT=HOST:PORT[@SPIFFE_ID]');
  const dest = hostPort(m[2]!);
  const out: OutboundTcpMapping = { listenPort: port(m[1]!), host: dest.host, port: dest.port };
  if (m[3] !== undefined) {
    try {
      out.spiffeId = parseSpiffeId(m[3]).id;
    } catch (err) {
      throw new FieldError((err as Error).message);
    }
  }
  return out;
}

/** `10.0.0.0/8`, `10.0.0.0/8:443`, `api.example.com`, `api.example.com:443`. */
function plaintextDestination(raw: string): PlaintextDestination {
  const m = /^([^:/\s]+)(?:\/(\d{1,2}))?(?::(\d+))?$/.exec(raw);
  if (!m) throw new FieldError('must be HOST[:PORT] or CIDR[:PORT]');
  const [, addr, bits, p] = m;
  const out: PlaintextDestination = {};
  if (bits !== undefined) {
    if (!/^\d+\.\d+\.\d+\.\d+$/.test(addr!) || Number(bits) > 32) throw new FieldError('CIDR must be IPv4 a.b.c.d/0-32');
    out.cidr = `${addr}/${bits}`;
  } else {
    out.host = addr!.toLowerCase();
  }
  if (p !== undefined) out.port = port(p);
  return out;
}

function serverFirstPortsField(raw: string): ReadonlySet<number> {
  // An empty variable reads as unset (the default list); `none` is the empty list.
  // parseServerFirstPorts throws FieldError itself.
  if (raw.trim() === 'none') return new Set();
  return parseServerFirstPorts(raw);
}

function appMetricsField(raw: string): AppMetricsTarget | null {
  if (raw === '') return null;
  try {
    return parseAppMetricsTarget(raw);
  } catch (err) {
    throw new FieldError((err as Error).message);
  }
}

function appProbes(raw: string): Record<string, AppProbe> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new FieldError('must be a JSON object');
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new FieldError('must be a JSON object of probe name -> {kind, port, …}');
  for (const [name, probe] of Object.entries(parsed as Record<string, AppProbe>)) {
    if (!/^[a-z0-9-]+\/(liveness|readiness|startup)$/.test(name)) throw new FieldError(`probe key ${JSON.stringify(name)} must be <container>/<liveness|readiness|startup>`);
    if (!probe || typeof probe !== 'object' || Array.isArray(probe)) throw new FieldError(`probe ${name} must be an object`);
    const kind = probe.kind ?? 'http';
    if (kind !== 'http' && kind !== 'grpc' && kind !== 'tcp') throw new FieldError(`probe ${name}: kind must be http, grpc or tcp`);
    if (!Number.isInteger(probe.port) || probe.port < 1 || probe.port > 65535) throw new FieldError(`probe ${name} needs a port 1-65535`);
    if (probe.timeoutSeconds !== undefined && (!Number.isInteger(probe.timeoutSeconds) || probe.timeoutSeconds < 1)) throw new FieldError(`probe ${name}: timeoutSeconds must be a positive integer`);
    if (probe.kind === 'grpc') {
      if (probe.service !== undefined && typeof probe.service !== 'string') throw new FieldError(`probe ${name}: service must be a string`);
    } else if (probe.kind === undefined || probe.kind === 'http') {
      if (typeof probe.path !== 'string' || !probe.path.startsWith('/')) throw new FieldError(`probe ${name} needs a numeric port and a path starting with /`);
      if (probe.scheme !== 'HTTP' && probe.scheme !== 'HTTPS') throw new FieldError(`probe ${name}: scheme must be HTTP or HTTPS`);
    }
  }
  return parsed as Record<string, AppProbe>;
}

const portList = list(port);

/** Discovery answers are used at most this long: well inside the control plane's staleness bound (MESHLET_DISCOVERY_MAX_STALENESS, 1m). */
export const DISCOVERY_MAX_TTL_MS = 30_000;

function discoveryTtl(raw: string): number {
  const ms = durationField(raw);
  if (ms <= 0 || ms > DISCOVERY_MAX_TTL_MS) throw new FieldError(`must be more than 0 and at most ${formatDuration(DISCOVERY_MAX_TTL_MS)} (an answer must expire well inside the control plane's 1m staleness bound, so a pod that turns meshed is not sent plaintext for long)`);
  return ms;
}

function cidr(raw: string): string {
  try {
    parseCidr(raw);
  } catch (err) {
    throw new FieldError((err as Error).message);
  }
  return raw;
}

/**
 * The catch-all's port. Never 0 (any free port): in a pod, the init container's iptables rules
 * send every undeclared inbound port to this exact port, and the sidecar holding it is what
 * keeps any other process of the pod from listening there and receiving that traffic
 * (docs/proxy.md "Several sidecars on one host").
 */
function catchAllPort(raw: string): number {
  if (/^0+$/.test(raw)) {
    throw new FieldError(
      'must be a port number (1-65535), not 0: iptables sends every undeclared inbound port of the pod to this exact port, and only the sidecar holding it keeps another process of the pod from listening there and receiving that traffic; to run several sidecars on one host give each its own free port (docs/proxy.md#several-sidecars-on-one-host)',
    );
  }
  return port(raw);
}

/** A share, 0 to 1, written as a decimal (`0`, `0.25`, `1`). */
function ratio(raw: string): number {
  if (!/^(?:0|1)(?:\.\d+)?$|^\.\d+$/.test(raw)) throw new FieldError('must be a decimal number from 0 to 1, e.g. 0.01');
  const value = Number(raw);
  if (value > 1) throw new FieldError('must be a decimal number from 0 to 1, e.g. 0.01');
  return value;
}

const PROXY_TIMEOUTS = DEFAULT_PROXY_SETTINGS.timeouts;
const PROXY_LIMITS = DEFAULT_PROXY_SETTINGS.limits;

export const SIDECAR_ENV = {
  trustDomain: { name: 'MESHLET_TRUST_DOMAIN', default: DEFAULT_TRUST_DOMAIN, description: 'SPIFFE trust domain of the mesh', parse: trustDomain },
  namespace: { name: 'MESHLET_NAMESPACE', description: "the pod's namespace (downward API metadata.namespace)", parse: k8sName },
  serviceAccount: { name: 'MESHLET_SERVICE_ACCOUNT', description: "the pod's ServiceAccount (downward API spec.serviceAccountName)", parse: k8sName },
  podName: { name: 'MESHLET_POD_NAME', default: '', description: "the pod's name, for logs (downward API metadata.name)", parse: text },
  podLabelsFile: { name: 'MESHLET_POD_LABELS_FILE', default: '', description: "downward API file of the pod's labels, to select policy servers by label", parse: text },

  identitySource: { name: 'MESHLET_IDENTITY_SOURCE', default: 'meshlet-ca' satisfies IdentitySourceKind, description: `where the SVID comes from: ${IDENTITY_SOURCES.join(' | ')}`, parse: oneOf(...IDENTITY_SOURCES) },
  caAddress: { name: 'MESHLET_CA_ADDRESS', default: 'meshlet-identity.meshlet-system.svc:8443', description: 'meshlet-ca: host:port of the identity service', parse: hostPort },
  trustBundleFile: { name: 'MESHLET_TRUST_BUNDLE_FILE', default: '/var/run/meshlet/trust/bundle.crt', description: 'meshlet-ca: PEM roots of the mesh (trust bundle ConfigMap)', parse: absolutePath },
  tokenFile: { name: 'MESHLET_TOKEN_FILE', default: '/var/run/secrets/meshlet/token', description: 'meshlet-ca: projected ServiceAccount token with the identity audience', parse: absolutePath },
  workloadApiSocket: { name: 'SPIFFE_ENDPOINT_SOCKET', default: 'unix:///run/spire/sockets/agent.sock', description: 'workload-api: the Workload API endpoint (unix:///path or tcp://ip:port)', parse: text },
  svidDir: { name: 'MESHLET_SVID_DIR', default: '/var/run/meshlet/svid', description: 'files: directory with tls.crt, tls.key, ca.crt (csi-driver-spiffe layout)', parse: absolutePath },
  federationBundles: { name: 'MESHLET_FEDERATION_BUNDLES', default: '', description: 'files and meshlet-ca: directory (a mounted ConfigMap, conventionally meshlet-federation) with one SPIFFE bundle (JSON) per foreign trust domain, each key named after its trust domain (optionally with .json); watched and reloaded live; empty: no federation (docs/identity-sources.md#federation)', parse: (raw: string) => (raw === '' ? '' : absolutePath(raw)) },

  inboundPorts: { name: 'MESHLET_INBOUND_PORTS', default: '', description: 'app ports the sidecar fronts: APP_PORT[:LISTEN_PORT][/http|grpc|tcp], comma-separated; listen ports default to 15100, 15101, …', parse: list(inboundEntry) },
  inboundCatchAllPort: { name: 'MESHLET_INBOUND_CATCHALL_PORT', default: '15006', description: 'where iptables sends inbound TCP to undeclared ports; such connections are refused and counted (never 0: see docs/proxy.md)', parse: catchAllPort },
  permissivePorts: { name: 'MESHLET_PERMISSIVE_PORTS', default: '', description: 'app ports that also accept plaintext callers (as unauthenticated); all others are STRICT', parse: portList },
  appAddress: { name: 'MESHLET_APP_ADDRESS', default: '127.0.0.1', description: 'address the app is reached at from the sidecar', parse: text },

  outboundPort: { name: 'MESHLET_OUTBOUND_PORT', default: '15001', description: "the sidecar's outbound listener (iptables target, or HTTP_PROXY in explicit mode)", parse: port },
  destinationAddresses: { name: 'MESHLET_DESTINATION_ADDRESSES', default: '', description: 'HOST:PORT=ADDRESS:PORT pairs: dial ADDRESS for a destination instead of its own name (explicit mode, local meshes)', parse: list(destinationAddress) },
  destinationIdentities: { name: 'MESHLET_DESTINATION_IDENTITIES', default: '', description: 'HOST:PORT=SPIFFE_ID pairs: the identity each destination must prove', parse: list(destinationIdentity) },
  plaintextDestinations: { name: 'MESHLET_PLAINTEXT_DESTINATIONS', default: '', description: 'destinations outside the mesh reached in plaintext: HOST[:PORT] or CIDR[:PORT]', parse: list(plaintextDestination) },
  acceptedTrustDomains: { name: 'MESHLET_ACCEPTED_TRUST_DOMAINS', default: '', description: 'trust domains a server may belong to when no exact identity is known (default: own)', parse: list(trustDomain) },

  outboundTcp: { name: 'MESHLET_OUTBOUND_TCP', default: '', description: 'opaque TCP destinations: LISTEN_PORT=HOST:PORT[@SPIFFE_ID]; the app dials 127.0.0.1:LISTEN_PORT and gets mTLS to the peer sidecar', parse: list(outboundTcpEntry) },
  adminPort: { name: 'MESHLET_ADMIN_PORT', default: '15020', description: 'admin port: /live /ready /metrics /connections /app-health/…', parse: port },
  adminAddress: { name: 'MESHLET_ADMIN_ADDRESS', default: '0.0.0.0', description: 'admin listen address (kubelet probes and Prometheus reach it on the pod IP)', parse: text },
  appProbes: { name: 'MESHLET_APP_PROBES', default: '{}', description: "JSON: the app's original probes (kind http | grpc | tcp), by <container>/<kind>, served at /app-health/<container>/<kind>", parse: appProbes },
  appMetrics: { name: 'MESHLET_APP_METRICS', default: '', description: "the app's own Prometheus endpoint as PORT/PATH (e.g. 9102/metrics), served merged with the sidecar's at /metrics/merged on the admin port; empty: not merged", parse: appMetricsField },
  adminConnections: { name: 'MESHLET_ADMIN_CONNECTIONS', default: 'loopback', description: 'who may read /connections (who talks to whom): loopback (kubectl exec / port-forward) | network (also the pod IP)', parse: oneOf('loopback', 'network') },
  adminShutdown: { name: 'MESHLET_ADMIN_SHUTDOWN', default: 'false', description: 'serve POST /shutdown (loopback callers only) so an app can stop the sidecar, e.g. a Job without native sidecars', parse: bool },

  policyDir: { name: 'MESHLET_POLICY_DIR', default: '/etc/meshlet/policy', description: 'mounted policy ConfigMap directory (watched, hot-reloaded)', parse: absolutePath },
  policyKey: { name: 'MESHLET_POLICY_KEY', default: 'policy.yaml', description: 'key of the ConfigMap holding the policy', parse: text },
  defaultPolicy: { name: 'MESHLET_DEFAULT_POLICY', default: MESH_DEFAULT_POLICY, description: `when no policy exists or no route matches: ${DEFAULT_POLICIES.join(' | ')}`, parse: oneOf(...DEFAULT_POLICIES) },
  defaultClientPolicy: { name: 'MESHLET_DEFAULT_CLIENT_POLICY', default: MESH_CLIENT_DEFAULT_POLICY, description: `outbound, when no client of the policy selects the workload: ${CLIENT_MESH_DEFAULTS.join(' | ')}; allow: unrestricted by policy (the env egress rules still apply); the others act as a client default with no destinations (docs/policy.md#clients)`, parse: oneOf(...CLIENT_MESH_DEFAULTS) },
  revocationList: { name: 'MESHLET_REVOCATION_LIST', default: '', description: 'the revocation list: a path (a RevocationList JSON file, e.g. the meshlet-revocations ConfigMap key revocations.json; watched, reloaded within about 1 s), or meshlet-ca (the identity service\'s list, polled every 5 s; needs MESHLET_IDENTITY_SOURCE=meshlet-ca): peers it names are refused on every handshake and their open connections closed (docs/revocation.md); empty: no revocation check', parse: (raw: string) => (raw === '' ? undefined : raw === 'meshlet-ca' ? raw : absolutePath(raw)) },

  connectTimeoutMs: { name: 'MESHLET_CONNECT_TIMEOUT', default: formatDuration(PROXY_TIMEOUTS.connectMs), description: 'TCP connect timeout (to the app and to peers)', parse: durationField },
  tlsHandshakeTimeoutMs: { name: 'MESHLET_TLS_HANDSHAKE_TIMEOUT', default: formatDuration(PROXY_TIMEOUTS.tlsHandshakeMs), description: 'mTLS handshake timeout', parse: durationField },
  tlsSessionResumption: { name: 'MESHLET_TLS_SESSION_RESUMPTION', default: 'on', description: "on: new mTLS connections to a peer sidecar resume the last TLS 1.3 session with that destination and identity (at most 1h, never past either SVID; the peer's identity is still checked), and callers may resume theirs; off: a full handshake every time, both directions", parse: oneOf('on', 'off') },
  tlsKeyExchange: { name: 'MESHLET_TLS_KEY_EXCHANGE', default: DEFAULT_KEY_EXCHANGE, description: 'key exchange of mTLS between sidecars, both directions: hybrid (post-quantum X25519MLKEM768 preferred; X25519, P-256 or P-384 with peers that lack it) | classical (X25519, P-256, P-384; no ML-KEM) | pq-only (X25519MLKEM768 only; a peer without it is refused, reason no_shared_group)', parse: oneOf(...KEY_EXCHANGE_MODES) },
  requestHeadersTimeoutMs: { name: 'MESHLET_REQUEST_HEADERS_TIMEOUT', default: formatDuration(PROXY_TIMEOUTS.requestHeadersMs), description: 'time allowed to receive a request head', parse: durationField },
  idleTimeoutMs: { name: 'MESHLET_IDLE_TIMEOUT', default: formatDuration(PROXY_TIMEOUTS.idleMs), description: 'idle keep-alive connections are closed after this', parse: durationField },
  drainTimeoutMs: { name: 'MESHLET_DRAIN_TIMEOUT', default: formatDuration(PROXY_TIMEOUTS.drainMs), description: 'on SIGTERM, how long in-flight requests may take to finish', parse: durationField },
  maxHeaderBytes: { name: 'MESHLET_MAX_HEADER_BYTES', default: String(PROXY_LIMITS.maxHeaderBytes), description: 'largest request head accepted (bytes)', parse: positiveInt },
  maxHeaders: { name: 'MESHLET_MAX_HEADERS', default: String(PROXY_LIMITS.maxHeaderCount), description: 'most header fields accepted in a request', parse: positiveInt },
  maxConnectionsPerUpstream: { name: 'MESHLET_MAX_CONNECTIONS_PER_UPSTREAM', default: String(PROXY_LIMITS.maxConnectionsPerUpstream), description: 'pooled HTTP/1.1 connections per next hop (an app port, a peer sidecar)', parse: positiveInt },
  maxPendingPerUpstream: { name: 'MESHLET_MAX_PENDING_PER_UPSTREAM', default: String(PROXY_LIMITS.maxPendingPerUpstream), description: 'requests that may wait for a busy next hop\'s connection; more are refused at once (503 MESHLET_UPSTREAM_BUSY)', parse: positiveInt },
  upstreamQueueTimeoutMs: { name: 'MESHLET_UPSTREAM_QUEUE_TIMEOUT', default: formatDuration(PROXY_TIMEOUTS.queueWaitMs), description: 'longest wait for a connection to a busy next hop (then 503 MESHLET_UPSTREAM_QUEUE_TIMEOUT)', parse: durationField },
  maxInFlightPerCaller: { name: 'MESHLET_MAX_IN_FLIGHT_PER_CALLER', default: '', description: 'requests one caller identity may have in flight to one app port (more: 503 MESHLET_CALLER_LIMIT); default half of MESHLET_MAX_CONNECTIONS_PER_UPSTREAM', parse: (raw: string) => (raw === '' ? undefined : positiveInt(raw)) },
  protocolDetectTimeoutMs: { name: 'MESHLET_PROTOCOL_DETECT_TIMEOUT', default: formatDuration(PROXY_TIMEOUTS.protocolDetectMs), description: "transparent outbound: how long a redirected connection's first bytes are awaited to tell HTTP, HTTP/2 and TLS from other TCP; a client silent this long is passed through as opaque TCP (server-speaks-first)", parse: durationField },
  serverFirstPorts: { name: 'MESHLET_SERVER_FIRST_PORTS', default: [...SERVER_FIRST_PORTS].join(','), description: 'transparent outbound: destination ports whose protocol the server speaks first (SMTP, MySQL…): passed through as opaque TCP at once, no detection wait; the list replaces the default (the pod annotation meshlet.io/server-first-ports sets it); none: detect on every port', parse: serverFirstPortsField },
  egressAllow: { name: 'MESHLET_EGRESS_ALLOW', default: '', description: 'egress (outside the cluster, or any passthrough without discovery) always allowed to these: HOST (or *.suffix, matched against the HTTP Host or TLS SNI) or CIDR (the address), each with an optional :PORT', parse: list(plaintextDestination) },
  egressDeny: { name: 'MESHLET_EGRESS_DENY', default: '', description: 'egress always refused to these (wins over MESHLET_EGRESS_ALLOW): same syntax', parse: list(plaintextDestination) },
  outboundPassthrough: { name: 'MESHLET_OUTBOUND_PASSTHROUGH', default: 'allow', description: "transparent outbound: the app's own TLS and non-HTTP TCP go to their original destination untouched (allow) or are refused, counted as MESHLET_PASSTHROUGH_DENIED (deny)", parse: oneOf('allow', 'deny') },
  streamIdleTimeoutMs: { name: 'MESHLET_STREAM_IDLE_TIMEOUT', default: formatDuration(PROXY_TIMEOUTS.streamIdleMs), description: 'a request or stream on which no byte moved either way for this long is cancelled (408/504, or a reset once the response began)', parse: durationField },
  h2MaxConcurrentStreams: { name: 'MESHLET_MAX_CONCURRENT_STREAMS', default: String(PROXY_LIMITS.h2MaxConcurrentStreams), description: 'concurrent streams per HTTP/2 connection the sidecar serves (SETTINGS_MAX_CONCURRENT_STREAMS)', parse: positiveInt },
  h2MaxPrematureResets: { name: 'MESHLET_MAX_PREMATURE_RESETS', default: String(PROXY_LIMITS.h2MaxPrematureResets), description: 'HTTP/2 rapid reset: GOAWAY once a connection has had this many streams reset before their response and they are over half of its streams', parse: positiveInt },
  maxInboundConnections: { name: 'MESHLET_MAX_INBOUND_CONNECTIONS', default: '1024', description: 'open connections per inbound listener (each app port, each opaque TCP port), handshakes in progress included; more are closed at accept and counted', parse: positiveInt },
  maxOutboundConnections: { name: 'MESHLET_MAX_OUTBOUND_CONNECTIONS', default: '1024', description: 'open connections on the outbound listener, and on each MESHLET_OUTBOUND_TCP listener; more are closed at accept and counted', parse: positiveInt },
  maxAdminConnections: { name: 'MESHLET_MAX_ADMIN_CONNECTIONS', default: String(ADMIN_MAX_CONNECTIONS), description: 'open connections on the admin port; more are closed at accept and counted', parse: positiveInt },
  fdReserve: { name: 'MESHLET_FD_RESERVE', default: '256', description: 'file descriptors kept free beyond the connection caps (SVID rotation, policy reload, logs); caps that do not fit the open-files limit are lowered at start', parse: positiveInt },

  discovery: { name: 'MESHLET_DISCOVERY', default: 'off', description: 'on: ask the identity service (MESHLET_CA_ADDRESS, with this pod\'s SVID) which destinations are meshed and as whom (docs/discovery.md); needs MESHLET_POD_CIDRS and MESHLET_SERVICE_CIDRS. Used for the app\'s own TLS and non-HTTP TCP (transparent interception) and for HTTP to a Host nothing configured names', parse: oneOf('off', 'on') },
  discoveryTtlMs: { name: 'MESHLET_DISCOVERY_TTL', default: '10s', description: 'discovery: how long a meshed or mixed answer is used (at most 30s)', parse: discoveryTtl },
  discoveryUnmeshedTtlMs: { name: 'MESHLET_DISCOVERY_UNMESHED_TTL', default: '10s', description: 'discovery: how long an unmeshed or external answer is used (at most 30s: a pod that turns meshed must not get plaintext for long)', parse: discoveryTtl },
  discoveryTimeoutMs: { name: 'MESHLET_DISCOVERY_TIMEOUT', default: '1s', description: 'discovery: deadline of one Resolve call (a connection to an uncached destination waits for it)', parse: durationField },
  discoveryCacheSize: { name: 'MESHLET_DISCOVERY_CACHE_SIZE', default: '4096', description: 'discovery: destinations (host, port) whose answers are kept; least recently used dropped first', parse: positiveInt },
  clusterDomain: { name: 'MESHLET_CLUSTER_DOMAIN', default: 'cluster.local', description: "discovery: the cluster's DNS domain (names under it are in the cluster)", parse: dnsDomain },
  podCidrs: { name: 'MESHLET_POD_CIDRS', default: '', description: 'discovery: the pod CIDRs, comma-separated; with no answer from discovery, destinations in them are refused instead of sent to the egress rules', parse: list(cidr) },
  serviceCidrs: { name: 'MESHLET_SERVICE_CIDRS', default: '', description: 'discovery: the service CIDRs, comma-separated (as MESHLET_POD_CIDRS)', parse: list(cidr) },

  logLevel: LOG_LEVEL_ENV,
  accessLog: { name: 'MESHLET_ACCESS_LOG', default: 'false', description: 'log every request (JSON) when true', parse: bool },
  decisionLog: { name: 'MESHLET_DECISION_LOG', default: 'deny', description: `one authz_decision JSON line per authorization decision (docs/decision-log.md): ${DECISION_LOG_MODES.join(' | ')}; deny: every denial, audit would-deny and refused path, within the log rate limit; all: allowed requests too, sampled by MESHLET_DECISION_LOG_ALLOW_SAMPLE; off: none (denials then get the short denied line)`, parse: oneOf(...DECISION_LOG_MODES) },
  decisionLogAllowSample: { name: 'MESHLET_DECISION_LOG_ALLOW_SAMPLE', default: '1', description: 'with MESHLET_DECISION_LOG=all: the share of allowed requests logged, 0 to 1 (0.01 = 1%); decided by trace id when the request has a valid traceparent (a trace is logged whole or not at all), at random otherwise', parse: ratio },
  logLimitRate: { name: 'MESHLET_LOG_LIMIT_RATE', default: String(DEFAULT_LOG_LIMITS.linesPerSecond), description: 'denial and admin-refusal log lines per second per (event, reason); the rest are counted in a log_suppressed line (metrics count every one)', parse: positiveInt },
  logLimitBurst: { name: 'MESHLET_LOG_LIMIT_BURST', default: String(DEFAULT_LOG_LIMITS.burst), description: `lines per (event, reason) written at once before MESHLET_LOG_LIMIT_RATE applies; all keys together get ${TOTAL_FACTOR}x rate and burst`, parse: positiveInt },
  requestMetrics: { name: 'MESHLET_REQUEST_METRICS', default: 'true', description: 'per-request metrics (meshlet_requests_total, latency histogram, bytes); false removes their cost from the hot path', parse: bool },
} satisfies Record<string, EnvVar<unknown>>;

/** First sidecar listen port handed out to declared app ports without an explicit one. */
export const INBOUND_LISTEN_BASE = 15100;

/** Reads and validates the sidecar's environment; throws ConfigError listing every problem. */
export function readSidecarConfig(env: Env): Readonly<SidecarConfig> {
  const r = new EnvReader(env);
  const v = r.readFrom(SIDECAR_ENV);

  const trustDomainValue = v('trustDomain');
  const namespace = v('namespace');
  const serviceAccount = v('serviceAccount');
  const entries = v('inboundPorts') ?? [];
  const permissive = new Set(v('permissivePorts') ?? []);
  const inboundPorts: InboundPort<PortProtocol>[] = entries.map((e, i) => ({
    appPort: e.appPort,
    listenPort: e.listenPort ?? INBOUND_LISTEN_BASE + i,
    protocol: e.protocol,
    permissive: permissive.has(e.appPort),
  }));

  const config: SidecarConfig = {
    trustDomain: trustDomainValue,
    namespace,
    serviceAccount,
    podName: v('podName'),
    spiffeId: trustDomainValue && namespace && serviceAccount ? workloadSpiffeId(trustDomainValue, namespace, serviceAccount).id : '',
    podLabelsFile: v('podLabelsFile'),
    identitySource: v('identitySource'),
    caAddress: v('caAddress'),
    trustBundleFile: v('trustBundleFile'),
    tokenFile: v('tokenFile'),
    workloadApiSocket: v('workloadApiSocket'),
    svidDir: v('svidDir'),
    federationBundles: v('federationBundles'),
    inboundPorts,
    inboundCatchAllPort: v('inboundCatchAllPort'),
    appAddress: v('appAddress'),
    outboundPort: v('outboundPort'),
    destinationAddresses: new Map(v('destinationAddresses') ?? []),
    destinationIdentities: new Map(v('destinationIdentities') ?? []),
    plaintextDestinations: v('plaintextDestinations') ?? [],
    acceptedTrustDomains: v('acceptedTrustDomains') ?? [],
    outboundTcp: v('outboundTcp') ?? [],
    adminPort: v('adminPort'),
    adminAddress: v('adminAddress'),
    appProbes: v('appProbes'),
    appMetrics: v('appMetrics'),
    adminConnections: v('adminConnections'),
    adminShutdown: v('adminShutdown'),
    policyDir: v('policyDir'),
    policyKey: v('policyKey'),
    defaultPolicy: v('defaultPolicy'),
    defaultClientPolicy: v('defaultClientPolicy'),
    revocationList: v('revocationList'),
    connectTimeoutMs: v('connectTimeoutMs'),
    tlsHandshakeTimeoutMs: v('tlsHandshakeTimeoutMs'),
    tlsSessionResumption: v('tlsSessionResumption'),
    tlsKeyExchange: v('tlsKeyExchange'),
    requestHeadersTimeoutMs: v('requestHeadersTimeoutMs'),
    idleTimeoutMs: v('idleTimeoutMs'),
    drainTimeoutMs: v('drainTimeoutMs'),
    maxHeaderBytes: v('maxHeaderBytes'),
    maxHeaders: v('maxHeaders'),
    maxConnectionsPerUpstream: v('maxConnectionsPerUpstream'),
    maxPendingPerUpstream: v('maxPendingPerUpstream'),
    upstreamQueueTimeoutMs: v('upstreamQueueTimeoutMs'),
    maxInFlightPerCaller: v('maxInFlightPerCaller'),
    streamIdleTimeoutMs: v('streamIdleTimeoutMs'),
    protocolDetectTimeoutMs: v('protocolDetectTimeoutMs'),
    outboundPassthrough: v('outboundPassthrough'),
    egressAllow: v('egressAllow') ?? [],
    egressDeny: v('egressDeny') ?? [],
    serverFirstPorts: v('serverFirstPorts'),
    h2MaxConcurrentStreams: v('h2MaxConcurrentStreams'),
    h2MaxPrematureResets: v('h2MaxPrematureResets'),
    maxInboundConnections: v('maxInboundConnections'),
    maxOutboundConnections: v('maxOutboundConnections'),
    maxAdminConnections: v('maxAdminConnections'),
    fdReserve: v('fdReserve'),
    discovery: v('discovery'),
    discoveryTtlMs: v('discoveryTtlMs'),
    discoveryUnmeshedTtlMs: v('discoveryUnmeshedTtlMs'),
    discoveryTimeoutMs: v('discoveryTimeoutMs'),
    discoveryCacheSize: v('discoveryCacheSize'),
    clusterDomain: v('clusterDomain'),
    podCidrs: v('podCidrs') ?? [],
    serviceCidrs: v('serviceCidrs') ?? [],
    logLevel: v('logLevel'),
    accessLog: v('accessLog'),
    decisionLog: v('decisionLog'),
    decisionLogAllowSample: v('decisionLogAllowSample'),
    logLimitRate: v('logLimitRate'),
    logLimitBurst: v('logLimitBurst'),
    requestMetrics: v('requestMetrics'),
  };
  if (config.acceptedTrustDomains.length === 0 && trustDomainValue) config.acceptedTrustDomains = [trustDomainValue];

  // Cross-field checks: every port the sidecar binds must be distinct, and no app port may
  // double as a sidecar port (iptables would loop the sidecar's own traffic).
  const bound = new Map<number, string>();
  const claim = (p: number | undefined, what: string, variable: string) => {
    if (p === undefined) return;
    const prior = bound.get(p);
    if (prior) r.problem(variable, `port ${p} is used twice (${prior} and ${what})`);
    else bound.set(p, what);
  };
  claim(config.outboundPort, 'outbound listener', SIDECAR_ENV.outboundPort.name);
  claim(config.adminPort, 'admin listener', SIDECAR_ENV.adminPort.name);
  claim(config.inboundCatchAllPort, 'inbound catch-all listener', SIDECAR_ENV.inboundCatchAllPort.name);
  for (const p of inboundPorts) claim(p.listenPort, `inbound listener for app port ${p.appPort}`, SIDECAR_ENV.inboundPorts.name);
  for (const p of inboundPorts) claim(p.appPort, `app port ${p.appPort}`, SIDECAR_ENV.inboundPorts.name);
  for (const m of config.outboundTcp) claim(m.listenPort, `outbound TCP listener for ${m.host}:${m.port}`, SIDECAR_ENV.outboundTcp.name);
  for (const p of permissive) {
    if (!inboundPorts.some((e) => e.appPort === p)) r.problem(SIDECAR_ENV.permissivePorts.name, `port ${p} is not one of MESHLET_INBOUND_PORTS`);
  }
  if (config.federationBundles && config.identitySource === 'workload-api') {
    // SPIRE hands the sidecar its federated bundles itself (federated_bundles): a second source of truth for them would be a surprise.
    r.problem(SIDECAR_ENV.federationBundles.name, 'not valid with MESHLET_IDENTITY_SOURCE=workload-api: SPIRE delivers the bundles of federated trust domains itself (federated_bundles); configure federation in SPIRE (federates_with) instead');
  }
  if (config.revocationList === 'meshlet-ca' && config.identitySource !== 'meshlet-ca') {
    // The list is asked for over the meshlet-ca source's channel, with its token.
    r.problem(SIDECAR_ENV.revocationList.name, `meshlet-ca needs MESHLET_IDENTITY_SOURCE=meshlet-ca (it is ${config.identitySource}); mount the list and give its path instead`);
  }
  if (config.discovery === 'on') {
    // Without them an in-cluster address would look external when discovery cannot answer.
    if (config.podCidrs.length === 0) r.problem(SIDECAR_ENV.podCidrs.name, 'required when MESHLET_DISCOVERY=on');
    if (config.serviceCidrs.length === 0) r.problem(SIDECAR_ENV.serviceCidrs.name, 'required when MESHLET_DISCOVERY=on');
  }
  r.done();
  return deepFreeze(config);
}
