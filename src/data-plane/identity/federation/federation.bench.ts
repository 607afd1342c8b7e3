/**
 * Micro-benchmark of federation's standing costs: `node src/data-plane/identity/federation/federation.bench.ts [N]`.
 * @bench-quick-args 100
 * Nothing of federation runs per request. What it costs a sidecar with MESHLET_FEDERATION_BUNDLES:
 *  - pollUs{1,10}:      one poll of a kubelet-laid-out directory holding 1 or 10 trust domains'
 *                       bundles that did not change (readlink ..data twice, readdir, stat + read +
 *                       sha256 per key, fingerprint compared): paid every 2 s
 *  - judgeUs{1,10}:     judging a changed directory (every bundle parsed: JSON, base64, X.509)
 *  - contextMs{0,1,10}: the SecureContext MeshTls builds on a change (or a rotation), with the own
 *                       bundle and 0, 1 or 10 federated roots: paid once per change
 * Printed as one JSON line.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';
import { createRootCa, issueSvid } from '../../../control-plane/identity-service/ca.ts';
import { kubeletWrite } from '../../../dev/netns/kubelet-volume.ts';
import { meshContextOptions } from '../../tls/secure-context.ts';
import { toSpiffeBundle } from '../trust-bundle.ts';
import type { IdentitySnapshot } from '../svid.ts';
import { judgeBundleDirectory, readBundleDirectory } from './bundle-directory.ts';

const N = Number(process.argv[2] ?? 2_000);

async function usPerAsync(n: number, fn: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < Math.min(n, 50); i++) await fn();
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await fn();
  return Number(process.hrtime.bigint() - start) / n / 1_000;
}

function usPer(n: number, fn: () => unknown): number {
  for (let i = 0; i < Math.min(n, 50); i++) fn();
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn();
  return Number(process.hrtime.bigint() - start) / n / 1_000;
}

const round = (x: number, digits = 1) => Number(x.toFixed(digits));

const dir = await mkdtemp(join(tmpdir(), 'meshlet-federation-bench-'));
try {
  const own = await createRootCa({ trustDomain: 'cluster.local' });
  const partners = await Promise.all(Array.from({ length: 10 }, (_, i) => createRootCa({ trustDomain: `partner-${i}.example` })));
  const files = Object.fromEntries(partners.map((ca, i) => [`partner-${i}.example.json`, JSON.stringify(toSpiffeBundle(ca.bundlePem, { sequence: 1 }))]));
  const one = join(dir, 'one');
  const ten = join(dir, 'ten');
  await kubeletWrite(one, { 'partner-0.example.json': files['partner-0.example.json']! });
  await kubeletWrite(ten, files);

  const pollUs1 = await usPerAsync(N, () => readBundleDirectory(one));
  const pollUs10 = await usPerAsync(N, () => readBundleDirectory(ten));
  const read1 = await readBundleDirectory(one);
  const read10 = await readBundleDirectory(ten);
  const judgeUs1 = usPer(N, () => judgeBundleDirectory(read1, new Map(), 'cluster.local'));
  const judgeUs10 = usPer(Math.max(1, N / 10), () => judgeBundleDirectory(read10, new Map(), 'cluster.local'));

  const svid = await issueSvid(own, { spiffeId: 'spiffe://cluster.local/ns/shop/sa/orders' });
  const federated = judgeBundleDirectory(read10, new Map(), 'cluster.local').bundles;
  const snapshotWith = (count: number): IdentitySnapshot => ({
    svid,
    bundles: new Map([['cluster.local', own.bundlePem], ...[...federated.values()].slice(0, count).map((b) => [b.trustDomain, b.pem] as [string, string])]),
  });
  const contexts = Math.max(10, Math.floor(N / 20));
  const contextMs = Object.fromEntries(
    [0, 1, 10].map((count) => {
      const snapshot = snapshotWith(count);
      return [`contextMs${count}`, round(usPer(contexts, () => createSecureContext(meshContextOptions(snapshot))) / 1_000, 3)];
    }),
  );
  console.log(JSON.stringify({ polls: N, pollUs1: round(pollUs1), pollUs10: round(pollUs10), judgeUs1: round(judgeUs1), judgeUs10: round(judgeUs10), ...contextMs }));
} finally {
  await rm(dir, { recursive: true, force: true });
}
