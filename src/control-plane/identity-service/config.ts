import { DEFAULT_TRUST_DOMAIN, parseSpiffeId } from '../../common/identity/spiffe-id.ts';
import { absolutePath, deepFreeze, dnsDomain, durationField, EnvReader, FieldError, hostPort, list, LOG_LEVEL_ENV, oneOf, positiveInt, text, trustDomain, type Env, type EnvVar } from '../../common/config/env.ts';
import { ipCidr } from '../injector/iptables/ip-cidr.ts';
import { formatDuration } from '../../common/config/duration.ts';
import type { LogLevel } from '../../common/log/logger.ts';
import { IDENTITY_CONNECTION_DEFAULTS } from './server.ts';
import { revocationConfigMapRef } from './revocation-configmap.ts';

/**
 * `meshlet identity`'s configuration: every variable listed once here with its default;
 * `meshlet identity --help` and docs/identity-service.md show this list. All variables are
 * read and every bad one reported together before the process refuses to start. The Certify
 * listener's connection limits default to IDENTITY_CONNECTION_DEFAULTS (server.ts), declared there once.
 */
export type TokenAuthMode = 'token-review' | 'jwks' | 'both';

export interface IdentityServiceConfig {
  trustDomain: string;
  caDir: string;
  listen: { host: string; port: number };
  adminListen: { host: string; port: number } | undefined;
  /** The SPIFFE ID of the self-issued serving certificate (when no TLS files are given). */
  servingSpiffeId: string;
  /** A serving certificate from files (e.g. cert-manager, DNS SAN) instead of the self-issued SVID. */
  tlsCertFile: string | undefined;
  tlsKeyFile: string | undefined;
  audience: string;
  svidTtlMs: number;
  authMode: TokenAuthMode;
  apiServerUrl: string;
  apiCaFile: string;
  apiTokenFile: string;
  jwksUrl: string;
  jwksIssuer: string;
  jwksCaFile: string;
  rateBurst: number;
  rateRefillMs: number;
  /** Open Certify connections at most; more are closed at accept (src/common/net/connection-guard.ts). */
  maxConnections: number;
  /** From accept to the end of the TLS handshake; a slower connection is closed. */
  handshakeTimeoutMs: number;
  /** A connection with no call in flight is closed after this (grpc.max_connection_idle_ms). */
  idleTimeoutMs: number;
  /** Discovery (docs/discovery.md): watch the API and serve Resolve on the Certify listener. */
  discovery: boolean;
  /** The cluster's DNS domain, for Service names (svc.ns.svc.<domain>). */
  clusterDomain: string;
  /** Pod and service CIDRs: an address in them that nothing has is `unknown` (refused), not `external`. */
  podCidrs: string[];
  serviceCidrs: string[];
  discoveryRateBurst: number;
  discoveryRateRefillMs: number;
  /** A watch down for longer than this makes Resolve answer UNAVAILABLE (stale view). */
  discoveryMaxStalenessMs: number;
  /** The revocation list, `configmap:NAMESPACE/NAME` or a path (docs/revocation.md); undefined: no identity is refused as revoked. */
  revocationList: string | undefined;
  logLevel: LogLevel;
}

/** MESHLET_IDENTITY_REVOCATION_LIST: `configmap:[NAMESPACE/]NAME`, an absolute path, or empty. */
function revocationListSetting(raw: string): string | undefined {
  if (raw.startsWith('configmap:')) {
    if (revocationConfigMapRef(raw) === null) throw new FieldError('must be configmap:NAME or configmap:NAMESPACE/NAME (a ConfigMap name and a namespace as Kubernetes spells them)');
    return raw;
  }
  return optionalAbsolutePath(raw);
}

function optionalAbsolutePath(raw: string): string | undefined {
  return raw === '' ? undefined : absolutePath(raw);
}

function httpsUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new FieldError('must be a URL');
  }
  if (url.protocol !== 'https:') throw new FieldError('must be an https:// URL (tokens must not travel in plaintext)');
  return raw;
}

function optionalHostPort(raw: string): { host: string; port: number } | undefined {
  return raw === '' || raw === 'off' ? undefined : hostPort(raw);
}

function optionalSpiffeId(raw: string): string {
  if (raw === '') return '';
  try {
    return parseSpiffeId(raw).id;
  } catch (err) {
    throw new FieldError((err as Error).message);
  }
}


const cidrList = list(ipCidr);

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export const IDENTITY_ENV = {
  trustDomain: { name: 'MESHLET_TRUST_DOMAIN', default: DEFAULT_TRUST_DOMAIN, description: 'SPIFFE trust domain; must be the CA\'s', parse: trustDomain },
  caDir: { name: 'MESHLET_CA_DIR', default: '/var/run/meshlet/ca', description: 'the signing (intermediate) CA: ca.crt, ca.key, chain.crt, bundle.crt as `meshlet ca init` writes them', parse: absolutePath },
  listen: { name: 'MESHLET_IDENTITY_LISTEN', default: '0.0.0.0:8443', description: 'host:port of the Certify gRPC (TLS) listener', parse: hostPort },
  adminListen: { name: 'MESHLET_IDENTITY_ADMIN_LISTEN', default: '0.0.0.0:9090', description: 'host:port of the plain-HTTP admin listener (/live /ready /metrics); "off" disables it', parse: optionalHostPort },
  servingSpiffeId: { name: 'MESHLET_IDENTITY_SPIFFE_ID', default: '', description: 'SPIFFE ID of the self-issued serving certificate (default spiffe://<trust domain>/ns/meshlet-system/sa/meshlet-identity)', parse: optionalSpiffeId },
  tlsCertFile: { name: 'MESHLET_IDENTITY_TLS_CERT', default: '', description: 'optional serving certificate chain (PEM) instead of the self-issued SVID; needs MESHLET_IDENTITY_TLS_KEY', parse: optionalAbsolutePath },
  tlsKeyFile: { name: 'MESHLET_IDENTITY_TLS_KEY', default: '', description: 'private key (PEM) of MESHLET_IDENTITY_TLS_CERT', parse: optionalAbsolutePath },
  audience: { name: 'MESHLET_IDENTITY_AUDIENCE', default: 'meshlet-identity', description: 'audience the sidecars\' projected tokens must carry', parse: text },
  svidTtlMs: { name: 'MESHLET_SVID_TTL', default: '24h', description: 'lifetime of issued SVIDs', parse: durationField },
  authMode: { name: 'MESHLET_TOKEN_AUTH', default: 'token-review', description: 'how tokens are checked: token-review | jwks | both (JWKS first, then TokenReview; both must agree)', parse: oneOf('token-review', 'jwks', 'both') },
  apiServerUrl: { name: 'MESHLET_KUBERNETES_API_URL', default: 'https://kubernetes.default.svc', description: 'API server for TokenReview (and the default JWKS host)', parse: httpsUrl },
  apiCaFile: { name: 'MESHLET_KUBERNETES_CA_FILE', default: `${SA_DIR}/ca.crt`, description: 'PEM roots of the API server', parse: absolutePath },
  apiTokenFile: { name: 'MESHLET_KUBERNETES_TOKEN_FILE', default: `${SA_DIR}/token`, description: "the service's own token for TokenReview and the JWKS fetch (re-read on each use)", parse: absolutePath },
  jwksUrl: { name: 'MESHLET_JWKS_URL', default: 'https://kubernetes.default.svc/openid/v1/jwks', description: 'jwks/both: the service-account issuer keys', parse: httpsUrl },
  jwksIssuer: { name: 'MESHLET_JWKS_ISSUER', default: 'https://kubernetes.default.svc.cluster.local', description: "jwks/both: the cluster's --service-account-issuer (tokens' iss)", parse: text },
  jwksCaFile: { name: 'MESHLET_JWKS_CA_FILE', default: '', description: 'jwks/both: PEM roots of the JWKS host (default: MESHLET_KUBERNETES_CA_FILE)', parse: optionalAbsolutePath },
  rateBurst: { name: 'MESHLET_IDENTITY_RATE_BURST', default: '10', description: 'Certify calls one identity may make at once', parse: positiveInt },
  rateRefillMs: { name: 'MESHLET_IDENTITY_RATE_REFILL', default: '1m', description: 'one more call per identity is allowed after each such interval', parse: durationField },
  maxConnections: { name: 'MESHLET_IDENTITY_MAX_CONNECTIONS', default: String(IDENTITY_CONNECTION_DEFAULTS.maxConnections), description: 'open Certify connections at most; more are closed at accept and counted (lowered at start to fit the open-files limit)', parse: positiveInt },
  handshakeTimeoutMs: { name: 'MESHLET_IDENTITY_HANDSHAKE_TIMEOUT', default: formatDuration(IDENTITY_CONNECTION_DEFAULTS.handshakeTimeoutMs), description: 'a connection that has not finished its TLS handshake this long after accept is closed', parse: durationField },
  idleTimeoutMs: { name: 'MESHLET_IDENTITY_IDLE_TIMEOUT', default: formatDuration(IDENTITY_CONNECTION_DEFAULTS.idleTimeoutMs), description: 'a connection with no call in flight this long is closed (the client reconnects on its next call)', parse: durationField },
  discovery: { name: 'MESHLET_DISCOVERY', default: 'off', description: 'on: watch Pods, Services and EndpointSlices and answer sidecars\' Resolve calls on the Certify listener (docs/discovery.md); needs MESHLET_POD_CIDRS and MESHLET_SERVICE_CIDRS', parse: oneOf('off', 'on') },
  clusterDomain: { name: 'MESHLET_CLUSTER_DOMAIN', default: 'cluster.local', description: 'discovery: the cluster\'s DNS domain (kubelet --cluster-domain)', parse: dnsDomain },
  podCidrs: { name: 'MESHLET_POD_CIDRS', default: '', description: 'discovery: the pod CIDRs, comma-separated (an address in them that no Pod has is refused, not sent to egress)', parse: cidrList },
  serviceCidrs: { name: 'MESHLET_SERVICE_CIDRS', default: '', description: 'discovery: the service CIDRs (kube-apiserver --service-cluster-ip-range), comma-separated', parse: cidrList },
  discoveryRateBurst: { name: 'MESHLET_DISCOVERY_RATE_BURST', default: '200', description: 'discovery: Resolve calls one caller (SPIFFE ID and address) may make at once', parse: positiveInt },
  discoveryRateRefillMs: { name: 'MESHLET_DISCOVERY_RATE_REFILL', default: '50ms', description: 'discovery: one more Resolve call per caller after each such interval', parse: durationField },
  discoveryMaxStalenessMs: { name: 'MESHLET_DISCOVERY_MAX_STALENESS', default: '1m', description: 'discovery: a watch down for longer than this makes Resolve answer UNAVAILABLE (the sidecar\'s fail-closed rule applies)', parse: durationField },
  revocationList: { name: 'MESHLET_IDENTITY_REVOCATION_LIST', default: '', description: 'the revocation list: configmap:NAME or configmap:NAMESPACE/NAME (key revocations.json of that ConfigMap — NAME alone: in the identity service\'s own namespace — read and watched through the API server: a change applies within about a second of kubectl apply) or the path of a RevocationList JSON file (watched, reloaded within about 1 s of the file changing); Certify refuses the identities it names with PERMISSION_DENIED and Revocations publishes it to meshlet-ca sidecars (docs/revocation.md); empty: no check', parse: revocationListSetting },
  logLevel: LOG_LEVEL_ENV,
} satisfies Record<string, EnvVar<unknown>>;

/** Reads and validates the identity service's environment; throws ConfigError listing every problem. */
export function readIdentityConfig(env: Env): Readonly<IdentityServiceConfig> {
  const r = new EnvReader(env);
  const v = r.readFrom(IDENTITY_ENV);
  const td = v('trustDomain');
  const servingSpiffeId = v('servingSpiffeId');
  const tlsCertFile = v('tlsCertFile');
  const tlsKeyFile = v('tlsKeyFile');
  const config: IdentityServiceConfig = {
    trustDomain: td,
    caDir: v('caDir'),
    listen: v('listen'),
    adminListen: v('adminListen'),
    servingSpiffeId: servingSpiffeId || (td ? `spiffe://${td}/ns/meshlet-system/sa/meshlet-identity` : ''),
    tlsCertFile,
    tlsKeyFile,
    audience: v('audience'),
    svidTtlMs: v('svidTtlMs'),
    authMode: v('authMode'),
    apiServerUrl: v('apiServerUrl'),
    apiCaFile: v('apiCaFile'),
    apiTokenFile: v('apiTokenFile'),
    jwksUrl: v('jwksUrl'),
    jwksIssuer: v('jwksIssuer'),
    jwksCaFile: v('jwksCaFile') ?? '',
    rateBurst: v('rateBurst'),
    rateRefillMs: v('rateRefillMs'),
    maxConnections: v('maxConnections'),
    handshakeTimeoutMs: v('handshakeTimeoutMs'),
    idleTimeoutMs: v('idleTimeoutMs'),
    discovery: v('discovery') === 'on',
    clusterDomain: v('clusterDomain'),
    podCidrs: v('podCidrs'),
    serviceCidrs: v('serviceCidrs'),
    discoveryRateBurst: v('discoveryRateBurst'),
    discoveryRateRefillMs: v('discoveryRateRefillMs'),
    discoveryMaxStalenessMs: v('discoveryMaxStalenessMs'),
    revocationList: v('revocationList'),
    logLevel: v('logLevel'),
  };
  if (config.discovery) {
    // Without the cluster's ranges an unknown in-cluster address would look external: refuse to start.
    if (config.podCidrs?.length === 0) r.problem(IDENTITY_ENV.podCidrs.name, 'required when MESHLET_DISCOVERY=on: the pod CIDRs (e.g. 10.244.0.0/16)');
    if (config.serviceCidrs?.length === 0) r.problem(IDENTITY_ENV.serviceCidrs.name, 'required when MESHLET_DISCOVERY=on: the service CIDRs (e.g. 10.96.0.0/12)');
  }
  const certSet = (env[IDENTITY_ENV.tlsCertFile.name] ?? '') !== '';
  const keySet = (env[IDENTITY_ENV.tlsKeyFile.name] ?? '') !== '';
  if (certSet !== keySet) {
    r.problem(certSet ? IDENTITY_ENV.tlsKeyFile.name : IDENTITY_ENV.tlsCertFile.name, 'MESHLET_IDENTITY_TLS_CERT and MESHLET_IDENTITY_TLS_KEY go together: set both or neither');
  }
  if (servingSpiffeId && td && !servingSpiffeId.startsWith(`spiffe://${td}/`)) {
    r.problem(IDENTITY_ENV.servingSpiffeId.name, `must be in the trust domain ${td} and name a workload`);
  }
  r.done();
  return deepFreeze(config);
}
