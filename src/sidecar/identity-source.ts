import { readFile } from 'node:fs/promises';
import type { SidecarConfig } from '../config/sidecar-env.ts';
import type { SvidSource } from '../identity/svid.ts';
import { FilesSource } from '../identity/sources/files.ts';
import { MeshletCaSource } from '../identity/sources/meshlet-ca.ts';
import { WorkloadApiSource } from '../identity/sources/workload-api.ts';

/** The identity source MESHLET_IDENTITY_SOURCE names, configured from the sidecar's settings. */
export async function createIdentitySource(config: Readonly<SidecarConfig>): Promise<SvidSource> {
  switch (config.identitySource) {
    case 'files':
      return new FilesSource({ dir: config.svidDir });
    case 'workload-api':
      return new WorkloadApiSource({ endpoint: config.workloadApiSocket, spiffeId: config.spiffeId });
    case 'meshlet-ca':
      return new MeshletCaSource({
        address: `${config.caAddress.host}:${config.caAddress.port}`,
        trustDomain: config.trustDomain,
        rootsPem: await readFile(config.trustBundleFile, 'utf8'),
        tokenPath: config.tokenFile,
      });
  }
}
