import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { adminDescriptorDemand, AdminServer } from '../../data-plane/admin/admin-server.ts';
import { ListenerMetrics } from '../../data-plane/metrics/listener-metrics.ts';
import { ConnectionGuard } from '../../common/net/connection-guard.ts';
import { CONTROL_PLANE_FD_RESERVE, DescriptorBudgetError, describeClamp, fitDescriptorBudget, readOpenFilesLimit, type DescriptorDemand } from '../../common/net/descriptor-budget.ts';
import { MeshletError } from '../../common/errors/meshlet-error.ts';
import { MountedDirWatcher } from '../../common/volume/mounted-dir-watcher.ts';
import { readCa } from './ca.ts';
import { RevocationListError } from '../../data-plane/identity/revocation/errors.ts';
import { RevocationListFile } from '../../data-plane/identity/revocation/revocation-list-file.ts';
import { RevocationListConfigMap, revocationConfigMapRef } from './revocation-configmap.ts';
import type { FollowedRevocationList } from '../../data-plane/identity/revocation/followed-revocation-list.ts';
import { RevocationMetrics } from '../../data-plane/identity/revocation/revocation-metrics.ts';
import type { IdentityServiceConfig } from './config.ts';
import { promCertifyMetrics, promDiscoveryMetrics } from './metrics.ts';
import { ClusterWatch } from '../discovery/cluster-watch.ts';
import { DiscoveryService } from '../discovery/discovery-service.ts';
import { MeshView } from '../discovery/mesh-view.ts';
import { buildTrustBundles } from '../../data-plane/identity/trust-bundle.ts';
import { TokenBucketLimiter } from './rate-limit.ts';
import { IdentityServer } from './server.ts';
import { RotatingServerCredentials, SelfIssuedServingIdentity } from './serving-identity.ts';
import { AllOfAuthenticators, type TokenAuthenticator } from './token/authenticator.ts';
import { JwksAuthenticator } from './token/jwks.ts';
import { TokenReviewAuthenticator } from './token/token-review.ts';
import { isNamespaceName } from '../../common/config/env.ts';

/**
 * Assembles the identity service from its validated configuration: reads the CA, builds the
 * token authenticator(s), the serving certificate, the rate limiter and metrics, and binds
 * the gRPC and admin listeners. `close()` is the graceful shutdown SIGTERM triggers.
 */
export class IdentityStartupError extends MeshletError {
  constructor(message: string, options?: ErrorOptions) {
    super('IDENTITY_STARTUP_FAILED', message, options);
  }
}

export interface RunningIdentityService {
  port: number;
  adminPort: number | undefined;
  registry: Registry;
  close(graceMs?: number): Promise<void>;
}

export async function startIdentityProcess(config: Readonly<IdentityServiceConfig>, logger: Logger): Promise<RunningIdentityService> {
  const ca = await readCa(config.caDir);
  if (ca.trustDomain !== config.trustDomain) {
    throw new IdentityStartupError(`the CA in ${config.caDir} is for the trust domain "${ca.trustDomain}", but MESHLET_TRUST_DOMAIN is "${config.trustDomain}"`);
  }
  const authenticator = await buildAuthenticator(config);
  const registry = new Registry();
  const cleanups: (() => unknown)[] = [() => authenticator.close?.()];

  let credentials: RotatingServerCredentials;
  if (config.tlsCertFile !== undefined && config.tlsKeyFile !== undefined) {
    const certFile = config.tlsCertFile;
    const keyFile = config.tlsKeyFile;
    const load = async () => ({ certChainPem: await readFile(certFile, 'utf8'), keyPem: await readFile(keyFile, 'utf8') });
    let current = await load();
    credentials = new RotatingServerCredentials(current);
    // cert-manager (or any Secret mount) rotates the files in place: pick the new pair up.
    const watcher = new MountedDirWatcher(dirname(certFile), () => {
      load()
        .then((next) => {
          if (next.certChainPem === current.certChainPem && next.keyPem === current.keyPem) return;
          credentials.update(next);
          current = next;
          logger.info({ event: 'serving_certificate_reloaded', file: certFile }, 'reloaded the serving certificate');
        })
        .catch((err: Error) => logger.error({ event: 'serving_certificate_reload_failed', err: err.message }, 'cannot reload the serving certificate; keeping the current one'));
    });
    cleanups.push(() => watcher.close());
  } else {
    const serving = await SelfIssuedServingIdentity.create(ca, {
      spiffeId: config.servingSpiffeId,
      ttlMs: config.svidTtlMs,
      onError: (err) => logger.error({ event: 'serving_certificate_renewal_failed', err: err.message }, 'cannot renew the serving certificate'),
    });
    credentials = serving.credentials;
    cleanups.push(() => serving.close());
  }

  const rateLimiter = new TokenBucketLimiter({ burst: config.rateBurst, refillPerSecond: 1000 / config.rateRefillMs });
  const sweep = setInterval(() => rateLimiter.sweep(), 60_000);
  sweep.unref();
  cleanups.push(() => clearInterval(sweep));

  // Descriptor headroom: the Certify cap must leave the admin port, TokenReview calls and
  // certificate reloads their descriptors (EMFILE otherwise).
  const demands: DescriptorDemand[] = [
    { listener: 'identity', ports: 1, maxConnections: config.maxConnections, perConnection: 1, clampable: true },
    ...(config.adminListen ? [adminDescriptorDemand()] : []),
  ];
  let budget;
  try {
    budget = fitDescriptorBudget(demands, CONTROL_PLANE_FD_RESERVE, readOpenFilesLimit());
  } catch (err) {
    for (const c of cleanups) await c();
    throw new IdentityStartupError((err as DescriptorBudgetError).message, { cause: err });
  }
  if (budget.clamped) logger.warn({ event: 'connection_caps_lowered', openFilesLimit: budget.limit, reserve: budget.reserve, caps: describeClamp(demands, budget) }, 'connection caps lowered to fit the open-files limit');
  const listeners = new ListenerMetrics(registry);
  const connections = { maxConnections: budget.caps.get('identity')!, handshakeTimeoutMs: config.handshakeTimeoutMs, idleTimeoutMs: config.idleTimeoutMs, observer: listeners };
  let discovery: { service: DiscoveryService; watch: ClusterWatch; close: () => Promise<void> } | undefined;
  if (config.discovery) {
    try {
      discovery = await startDiscovery(config, ca.trustDomain, ca.bundlePem, registry, logger);
    } catch (err) {
      for (const c of cleanups) await c();
      throw err;
    }
    cleanups.push(discovery.close);
  }
  let revocations: FollowedRevocationList | undefined;
  if (config.revocationList !== undefined) {
    try {
      revocations = await followRevocationList(config, config.revocationList, registry, logger);
    } catch (err) {
      for (const c of cleanups) await c();
      throw err;
    }
    const list = revocations;
    cleanups.push(() => list.close());
  }
  const server = new IdentityServer({ ca, authenticator, credentials, svidTtlMs: config.svidTtlMs, rateLimiter, metrics: promCertifyMetrics(registry), connections, logger, ...(discovery ? { discovery: discovery.service } : {}), ...(revocations ? { revoked: revocations } : {}) });
  let port: number;
  try {
    port = await server.listen(config.listen.host, config.listen.port);
  } catch (err) {
    for (const c of cleanups) await c();
    throw new IdentityStartupError(`cannot listen on ${config.listen.host}:${config.listen.port}: ${(err as Error).message}`, { cause: err });
  }

  let admin: AdminServer | undefined;
  let adminPort: number | undefined;
  if (config.adminListen) {
    admin = new AdminServer({
      registry,
      connections: () => [],
      // Discovery is reported, not required: Certify must keep working while the API watch is down
      // (sidecars then get UNAVAILABLE from Resolve and apply their fail-closed rule).
      readiness: () => ({ ready: true, checks: { ca: { ok: true, detail: ca.trustDomain }, listener: { ok: true, detail: `:${port}` }, ...(discovery ? { discovery: discoveryCheck(discovery.watch) } : {}) } }),
      guard: new ConnectionGuard({ listener: 'admin', maxConnections: budget.caps.get('admin')!, observer: listeners }),
    });
    adminPort = (await admin.listen(config.adminListen.port, config.adminListen.host)).port;
  }
  logger.info({ event: 'started', port, adminPort, trustDomain: ca.trustDomain, auth: authenticator.kind, svidTtlMs: config.svidTtlMs, discovery: config.discovery }, 'meshlet identity started');

  return {
    port,
    adminPort,
    registry,
    async close(graceMs = 10_000) {
      await admin?.close();
      await server.close(graceMs);
      for (const c of cleanups) await c();
    },
  };
}

/**
 * MESHLET_IDENTITY_REVOCATION_LIST (docs/revocation.md): the list Certify checks, followed as it
 * changes — `configmap:NAMESPACE/NAME` through the API server (seconds, not kubelet's volume
 * sync), or a file; a bad list is logged and counted and the last good one stays. A list that
 * is there but invalid at start (or an API server that cannot be asked) refuses the start
 * (issuing to an identity that may be revoked is worse than not starting: the running replicas
 * keep serving).
 */
async function followRevocationList(config: Readonly<IdentityServiceConfig>, setting: string, registry: Registry, logger: Logger): Promise<FollowedRevocationList> {
  const ref = revocationConfigMapRef(setting);
  let list: FollowedRevocationList;
  // How the log lines name the list: `file` for a path (as before), `source` for a ConfigMap.
  let named: { file: string } | { source: string };
  if (ref === null) {
    list = new RevocationListFile({ path: setting });
    named = { file: setting };
  } else {
    let caPem: string;
    try {
      caPem = await readFile(config.apiCaFile, 'utf8');
    } catch (err) {
      throw new IdentityStartupError(`MESHLET_IDENTITY_REVOCATION_LIST: cannot read the Kubernetes API CA file ${config.apiCaFile}: ${(err as Error).message}`, { cause: err });
    }
    const namespace = ref.namespace ?? (await ownNamespace(config.apiTokenFile));
    const configMap = new RevocationListConfigMap({ namespace, name: ref.name, apiServerUrl: config.apiServerUrl, caPem, tokenPath: config.apiTokenFile, logger });
    list = configMap;
    named = { source: configMap.source };
  }
  const metrics = new RevocationMetrics(registry);
  list.onReload((reload) => {
    metrics.recordReload(reload);
    if (reload.result === 'rejected') logger.warn({ event: 'revocation_list_rejected', ...named, code: reload.error?.code, err: reload.error?.message, revoked: reload.current.size }, 'revocation list not applied; keeping the last good one');
    else if (reload.result === 'absent') logger.info({ event: 'revocation_list_absent', ...named }, 'no revocation list yet; no identity is refused as revoked until one appears');
    else logger.info({ event: 'revocation_list_loaded', ...named, sha256: reload.current.digest, revoked: reload.current.size, added: reload.current.addedSince(reload.previous), removed: reload.current.removedSince(reload.previous) }, 'revocation list in force');
  });
  try {
    await list.start();
  } catch (err) {
    list.close();
    if (err instanceof RevocationListError) throw new IdentityStartupError(`MESHLET_IDENTITY_REVOCATION_LIST: ${err.code}: ${err.message}`, { cause: err });
    throw err;
  }
  return list;
}

/**
 * `configmap:NAME` names a ConfigMap of the identity service's own namespace: the `namespace`
 * file kubelet puts next to the ServiceAccount token (so a kustomize overlay that moves the
 * control plane to another namespace needs no other change).
 */
async function ownNamespace(tokenFile: string): Promise<string> {
  const file = join(dirname(tokenFile), 'namespace');
  try {
    const namespace = (await readFile(file, 'utf8')).trim();
    if (isNamespaceName(namespace)) return namespace;
    throw new Error(`${JSON.stringify(namespace.slice(0, 80))} is not a namespace name`);
  } catch (err) {
    throw new IdentityStartupError(`MESHLET_IDENTITY_REVOCATION_LIST: configmap:NAME is read in the identity service's own namespace, from ${file}: ${(err as Error).message}; or name it: configmap:NAMESPACE/NAME`, { cause: err });
  }
}

/** The cluster watch and the Resolve service (docs/discovery.md), with the API client settings TokenReview uses. */
async function startDiscovery(config: Readonly<IdentityServiceConfig>, trustDomain: string, bundlePem: string, registry: Registry, logger: Logger): Promise<{ service: DiscoveryService; watch: ClusterWatch; close: () => Promise<void> }> {
  let caPem: string;
  try {
    caPem = await readFile(config.apiCaFile, 'utf8');
  } catch (err) {
    throw new IdentityStartupError(`cannot read the Kubernetes API CA file ${config.apiCaFile}: ${(err as Error).message}`, { cause: err });
  }
  const metrics = promDiscoveryMetrics(registry);
  const view = new MeshView({ trustDomain, clusterDomain: config.clusterDomain, clusterCidrs: [...config.podCidrs, ...config.serviceCidrs] });
  const watch = new ClusterWatch({ apiServerUrl: config.apiServerUrl, caPem, tokenPath: config.apiTokenFile, view, maxStalenessMs: config.discoveryMaxStalenessMs, metrics, logger });
  const bundles = buildTrustBundles({ [trustDomain]: bundlePem });
  const limiter = new TokenBucketLimiter({ burst: config.discoveryRateBurst, refillPerSecond: 1000 / config.discoveryRateRefillMs });
  const sweep = setInterval(() => limiter.sweep(), 60_000);
  sweep.unref();
  const service = new DiscoveryService({ view, bundles: () => bundles, freshness: () => watch.fresh(), rateLimiter: limiter, metrics, logger });
  watch.start();
  void watch.whenSynced().then(() => logger.info({ event: 'discovery_synced', ...view.counts }, 'discovery: Pods, Services and EndpointSlices listed'));
  return {
    service,
    watch,
    close: async () => {
      clearInterval(sweep);
      await watch.close();
    },
  };
}

function discoveryCheck(watch: ClusterWatch): { ok: boolean; detail: string } {
  const fresh = watch.fresh();
  return { ok: true, detail: fresh.ok ? 'synced' : `${fresh.reason}: ${fresh.detail}` };
}

async function buildAuthenticator(config: Readonly<IdentityServiceConfig>): Promise<TokenAuthenticator> {
  const readPem = async (path: string, what: string) => {
    try {
      return await readFile(path, 'utf8');
    } catch (err) {
      throw new IdentityStartupError(`cannot read ${what} ${path}: ${(err as Error).message}`, { cause: err });
    }
  };
  const all: TokenAuthenticator[] = [];
  if (config.authMode === 'jwks' || config.authMode === 'both') {
    all.push(
      new JwksAuthenticator({
        jwksUrl: config.jwksUrl,
        issuer: config.jwksIssuer,
        audience: config.audience,
        caPem: await readPem(config.jwksCaFile || config.apiCaFile, 'the JWKS CA file'),
        credentialTokenPath: config.apiTokenFile,
      }),
    );
  }
  if (config.authMode === 'token-review' || config.authMode === 'both') {
    all.push(
      new TokenReviewAuthenticator({
        apiServerUrl: config.apiServerUrl,
        caPem: await readPem(config.apiCaFile, 'the Kubernetes API CA file'),
        credentialTokenPath: config.apiTokenFile,
        audience: config.audience,
      }),
    );
  }
  return all.length === 1 ? all[0]! : new AllOfAuthenticators(all);
}
