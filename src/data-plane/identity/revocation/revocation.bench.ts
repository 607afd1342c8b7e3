// What revocation costs (docs/revocation.md "Cost"): `node src/data-plane/identity/revocation/revocation.bench.ts [seconds]`.
// @bench-quick-args 0.3
// 1. Full mTLS handshakes (both ends in this process) with no revocation list, and with a list
//    of MAX_REVOKED_ENTRIES IDs that does not name the peers: the per-handshake price of the
//    check and of the open-connection bookkeeping. Interleaved rounds, best of each.
// 2. What a reload of the largest list holds the event loop for (first, before anything else
//    warmed the parser up), and the lookup alone.
import { connect, createServer, type Server, type TLSSocket } from 'node:tls';
import { createIntermediateCa, createRootCa, issueSvid } from '../../../control-plane/identity-service/ca.ts';
import type { IdentitySnapshot } from '../svid.ts';
import { StaticSvidSource } from '../sources/static.ts';
import { MeshTls } from '../../tls/mesh-tls.ts';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { formatRevocationList, MAX_REVOKED_ENTRIES, parseRevocationList, parseRevocationListInSlices } from './revocation-list.ts';

const seconds = Number(process.argv[2] ?? 3);
const CONCURRENCY = 8;
const ROUNDS = 3;

const root = await createRootCa({ trustDomain: 'cluster.local' });
const issuer = await createIntermediateCa(root);
async function snapshot(path: string): Promise<IdentitySnapshot> {
  const svid = await issueSvid(issuer, { spiffeId: `spiffe://cluster.local${path}` });
  return { svid, bundles: new Map([['cluster.local', root.bundlePem]]) };
}
const serverId = await snapshot('/ns/shop/sa/orders');
const clientId = await snapshot('/ns/shop/sa/frontend');
// The largest list the limits allow: MAX_REVOKED_ENTRIES entries, compact JSON (pretty-printed
// as the CLI writes them, they would pass the 1 MiB limit first).
const bigListText = JSON.stringify(JSON.parse(formatRevocationList(Array.from({ length: MAX_REVOKED_ENTRIES }, (_, i) => ({ spiffeId: `spiffe://cluster.local/ns/t${i % 100}/sa/w${i}`, revokedAt: '2026-12-04T07:00:00Z' })))));
{
  // A reload as the sidecar does it (parseRevocationListInSlices): the longest the event loop is
  // held, cold (the first reload of a process) and warm, and the whole parse in one piece for comparison.
  const kib = (Buffer.byteLength(bigListText) / 1024).toFixed(0);
  for (const label of ['cold', 'warm']) {
    const delay = monitorEventLoopDelay({ resolution: 1 });
    delay.enable();
    const t = performance.now();
    await parseRevocationListInSlices(bigListText);
    const took = performance.now() - t;
    delay.disable();
    console.log(`reload of the largest list (${MAX_REVOKED_ENTRIES} entries, ${kib} KiB), ${label}: ${took.toFixed(1)} ms in all, event loop held at most ${(delay.max / 1e6).toFixed(1)} ms`);
  }
  const runs = 10;
  const t = performance.now();
  for (let i = 0; i < runs; i++) parseRevocationList(bigListText);
  console.log(`the same parse in one piece (parseRevocationList)   ${((performance.now() - t) / runs).toFixed(1)} ms`);
}
const bigList = parseRevocationList(bigListText);

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as { port: number }).port;
}

/** A server and a client MeshTls pair (resumption off: every connection is a full handshake). */
async function pair(revoked: { has(id: string): boolean } | undefined): Promise<{ open: () => TLSSocket; close: () => void }> {
  const options = { sessionResumption: false, ...(revoked ? { revoked } : {}) };
  const serverTls = new MeshTls(new StaticSvidSource(serverId), options);
  const clientTls = new MeshTls(new StaticSvidSource(clientId), options);
  const server = createServer(serverTls.serverOptions(), (s) => {
    s.on('error', () => {});
    try {
      serverTls.verifyClient(s);
    } catch {
      return;
    }
    s.once('data', (d) => s.end(d));
  });
  serverTls.attachServer(server);
  const port = await listen(server);
  return {
    open: () => clientTls.connect({ host: '127.0.0.1', port }, { spiffeId: 'spiffe://cluster.local/ns/shop/sa/orders' }),
    close: () => {
      server.close();
      serverTls.close();
      clientTls.close();
    },
  };
}

async function measure(open: () => TLSSocket): Promise<{ perSecond: number; cpuMicros: number }> {
  let done = 0;
  const until = Date.now() + seconds * 1000;
  const worker = async (): Promise<void> => {
    while (Date.now() < until) {
      await new Promise<void>((resolve) => {
        const socket = open();
        socket.once('secureConnect', () => {
          socket.once('data', () => {
            done++;
            socket.destroy();
            resolve();
          });
          socket.write('x');
        });
        socket.once('error', () => {
          socket.destroy();
          resolve();
        });
      });
    }
  };
  const start = performance.now();
  const cpu = process.cpuUsage();
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const used = process.cpuUsage(cpu);
  return { perSecond: done / ((performance.now() - start) / 1000), cpuMicros: (used.user + used.system) / Math.max(done, 1) };
}

const off = await pair(undefined);
const on = await pair(bigList);
const best = { off: { perSecond: 0, cpuMicros: Infinity }, on: { perSecond: 0, cpuMicros: Infinity } };
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, p] of [['off', off], ['on', on]] as const) {
    const r = await measure(p.open);
    best[name].perSecond = Math.max(best[name].perSecond, r.perSecond);
    best[name].cpuMicros = Math.min(best[name].cpuMicros, r.cpuMicros);
  }
}
off.close();
on.close();
console.log(`best of ${ROUNDS} rounds of ${seconds} s, ${CONCURRENCY} full handshakes in flight, client and server in one process`);
console.log(`no revocation list                          ${best.off.perSecond.toFixed(0).padStart(6)} handshakes/s  ${best.off.cpuMicros.toFixed(0).padStart(6)} µs CPU each`);
console.log(`list of ${MAX_REVOKED_ENTRIES} IDs (peers not listed)      ${best.on.perSecond.toFixed(0).padStart(6)} handshakes/s  ${best.on.cpuMicros.toFixed(0).padStart(6)} µs CPU each`);

{
  const n = 1_000_000;
  let hits = 0;
  const t = performance.now();
  for (let i = 0; i < n; i++) if (bigList.has(i % 2 === 0 ? 'spiffe://cluster.local/ns/shop/sa/frontend' : 'spiffe://cluster.local/ns/t7/sa/w7')) hits++;
  console.log(`RevocationSet.has (${MAX_REVOKED_ENTRIES} IDs)                 ${(((performance.now() - t) * 1e6) / n).toFixed(1)} ns/lookup (${hits} hits)`);
}
