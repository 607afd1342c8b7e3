/**
 * Micro-benchmark of verifyX509Svid, the per-handshake check: `node src/data-plane/identity/svid-verify.bench.ts`.
 * "warm": the same peer chain again (the common case: facts and signatures cached).
 * "cold leaf": a never-seen leaf under a known intermediate (a peer that just rotated).
 * "cold chain": leaf and intermediate both never seen.
 */
import { createIntermediateCa, createRootCa, issueSvid } from '../../control-plane/identity-service/ca.ts';
import { pemCertificatesToDer } from './pem.ts';
import { verifyX509Svid } from './svid-verify.ts';

const TD = 'bench.example';
const ID = `spiffe://${TD}/ns/default/sa/bench`;
const root = await createRootCa({ trustDomain: TD });
const intermediate = await createIntermediateCa(root);
const bundles = new Map([[TD, root.bundlePem]]);
const chainOf = async (ca = intermediate) => pemCertificatesToDer((await issueSvid(ca, { spiffeId: ID })).certChainPem);

function perCallMicros(chains: Buffer[][], rounds = 1): number {
  const started = process.hrtime.bigint();
  for (let r = 0; r < rounds; r++) for (const chain of chains) verifyX509Svid(chain, bundles);
  return Number(process.hrtime.bigint() - started) / 1000 / (chains.length * rounds);
}

const warm = await chainOf();
verifyX509Svid(warm, bundles);
const warmUs = perCallMicros([warm], 50_000);

const coldLeaves: Buffer[][] = [];
for (let i = 0; i < 300; i++) coldLeaves.push(await chainOf());
const coldLeafUs = perCallMicros(coldLeaves);

const coldChains: Buffer[][] = [];
for (let i = 0; i < 100; i++) coldChains.push(await chainOf(await createIntermediateCa(root)));
const coldChainUs = perCallMicros(coldChains);

console.log(JSON.stringify({ warmMicros: +warmUs.toFixed(2), coldLeafMicros: +coldLeafUs.toFixed(1), coldChainMicros: +coldChainUs.toFixed(1) }));
