import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createRootCa, issueSvid } from '../../src/control-plane/identity-service/ca.ts';

export const BENCH_IDS = {
  client: 'spiffe://cluster.local/ns/bench/sa/client',
  server: 'spiffe://cluster.local/ns/bench/sa/server',
} as const;

export interface SvidFiles {
  svid: string;
  key: string;
  bundle: string;
}

/** One trust domain, a client and a server SVID as PEM files: the same files feed meshlet and nginx. */
export async function writeBenchPki(dir: string): Promise<{ client: SvidFiles; server: SvidFiles }> {
  await mkdir(dir, { recursive: true });
  const ca = await createRootCa({ trustDomain: 'cluster.local' });
  const out = async (name: string, spiffeId: string): Promise<SvidFiles> => {
    const svid = await issueSvid(ca, { spiffeId });
    const files = { svid: join(dir, `${name}.crt`), key: join(dir, `${name}.key`), bundle: join(dir, 'bundle.crt') };
    await writeFile(files.svid, svid.certChainPem);
    await writeFile(files.key, svid.privateKeyPem, { mode: 0o600 });
    await writeFile(files.bundle, svid.bundlePem);
    return files;
  };
  return { client: await out('client', BENCH_IDS.client), server: await out('server', BENCH_IDS.server) };
}
