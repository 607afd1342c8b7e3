import { readFile } from 'node:fs/promises';
import type { SidecarConfig } from './sidecar-env.ts';
import type { SvidSource } from '../identity/svid.ts';

/**
 * The identity source MESHLET_IDENTITY_SOURCE names, configured from the sidecar's settings.
 * Each source is imported only when chosen: the gRPC stack the meshlet-ca and workload-api
 * sources need is several MB of heap a `files` sidecar never has to carry.
 */
export async function createIdentitySource(config: Readonly<SidecarConfig>): Promise<SvidSource> {
  switch (config.identitySource) {
    case 'files': {
      const { FilesSource } = await import('../identity/sources/files.ts');
      return new FilesSource({ dir: config.svidDir });
    }
    case 'workload-api': {
      const { WorkloadApiSource } = await import('../identity/sources/workload-api.ts');
      return new WorkloadApiSource({ endpoint: config.workloadApiSocket, spiffeId: config.spiffeId });
    }
    case 'meshlet-ca': {
      const { MeshletCaSource } = await import('../identity/sources/meshlet-ca.ts');
      return new MeshletCaSource({
        address: `${config.caAddress.host}:${config.caAddress.port}`,
        trustDomain: config.trustDomain,
        rootsPem: await readFile(config.trustBundleFile, 'utf8'),
        tokenPath: config.tokenFile,
      });
    }
  }
}
