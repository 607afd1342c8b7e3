import { readFile } from 'node:fs/promises';
import type { SvidSource } from '../identity/svid.ts';
import type { SidecarConfig } from '../sidecar/sidecar-env.ts';
import { ClusterScope } from './cluster-scope.ts';
import { DestinationCache, type DestinationCacheOptions } from './destination-cache.ts';
import type { Destination, Resolution } from './resolution.ts';

/**
 * The sidecar's discovery, as the wiring will start it (docs/discovery.md "The sidecar
 * client"): the Resolve client on the identity service, behind the destination cache.
 * `undefined` when MESHLET_DISCOVERY is off — and then grpc-js is not even loaded: the client
 * module is imported here, on demand.
 *
 * Not started by the Sidecar yet (the wiring step): nothing in the proxies asks it.
 */
export interface Discovery {
  /** The cached answer (synchronously) or a promise of it; never rejects. Feed it to `decide()`. */
  resolve(destination: Destination): Resolution | Promise<Resolution>;
  /** Where a destination may be when there is no answer (the cluster CIDRs and domain). */
  readonly scope: ClusterScope;
  readonly cache: DestinationCache;
  close(): Promise<void>;
}

export async function createDiscovery(
  config: Readonly<SidecarConfig>,
  identity: Pick<SvidSource, 'current'>,
  options: Pick<DestinationCacheOptions, 'onFetched' | 'now'> = {},
): Promise<Discovery | undefined> {
  if (config.discovery !== 'on') return undefined;
  const { DiscoveryClient } = await import('./discovery-client.ts');
  // Roots for the identity service before the first SVID (after it: the SVID's own bundle).
  let rootsPem: string | undefined;
  if (config.identitySource === 'meshlet-ca') rootsPem = await readFile(config.trustBundleFile, 'utf8').catch(() => undefined);
  const client = new DiscoveryClient({
    address: `${config.caAddress.host}:${config.caAddress.port}`,
    trustDomain: config.trustDomain,
    identity,
    ...(rootsPem !== undefined ? { rootsPem } : {}),
    callTimeoutMs: config.discoveryTimeoutMs,
  });
  const scope = new ClusterScope({ clusterDomain: config.clusterDomain, cidrs: [...config.podCidrs, ...config.serviceCidrs] });
  const cache = new DestinationCache({
    resolver: client,
    scope,
    positiveTtlMs: config.discoveryTtlMs,
    negativeTtlMs: config.discoveryUnmeshedTtlMs,
    maxEntries: config.discoveryCacheSize,
    ...options,
  });
  return {
    resolve: (destination) => cache.resolve(destination),
    scope,
    cache,
    close: async () => {
      cache.clear();
      await client.close();
    },
  };
}
