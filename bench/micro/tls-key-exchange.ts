// Issue 16 item 6: what the post-quantum key exchange between sidecars costs per new connection.
// MESHLET_TLS_KEY_EXCHANGE (src/data-plane/tls/key-exchange.ts, docs/tls.md "Key exchange"):
//   classical  X25519 (P-256, P-384 offered too): one X25519 key share;
//   hybrid     the default: X25519MLKEM768 first, with an X25519 key share beside the hybrid one
//              (so a classical peer needs no HelloRetryRequest), classical groups behind;
//   pq-only    X25519MLKEM768 alone (hybrid minus pq-only = the cost of the extra X25519 share).
// Measured on loopback over real mesh mTLS (client certificate required; SPIFFE verification on
// both ends), full handshakes (MeshTls with session resumption off) and resumed ones (resumption
// on, as sidecars run by default: a TLS 1.3 resumption still makes a fresh key exchange,
// psk_dhe_ke, so it pays the ML-KEM cost too, without the certificates), with the bench's SVIDs
// (bench/lib/bench-pki.ts: one CA, ECDSA P-256), client and server each in its own process started
// with the injector's Node flags and environment (heap-settings.ts), as the sidecars run:
//   server process: one listener per setting and resumption (tls.createServer with MeshTls.serverOptions,
//     attachServer's fail-closed gate, verifyClient), echoing the client's first byte;
//   client process: MeshTls.connect per setting and resumption, 8 handshakes in flight (closed
//     loop): connect, 'secureConnect' (server identity verified), write 1 byte, wait for the echo
//     (so the server has verified the client too), destroy. With resumption on, every connection
//     offers the destination's cached session (the share that really resumed is reported).
// Figures, per setting, over alternated rounds (order rotated each round; median and min–max):
//   handshakes/s, and CPU µs per handshake of each process (process.cpuUsage in each, so the
//   shared cores and the other process's load do not count); the negotiated group is checked.
// Bytes on the wire: 20 connections per variant through a TCP relay in this process that counts
// every byte each way (TCP payload: the TLS records, i.e. the handshake, 1 byte each way and the
// server's two session tickets), and the size of the plaintext ClientHello and ServerHello records
// (where the key shares travel; a resumed ClientHello also carries the ticket it offers).
// Run: node bench/micro/tls-key-exchange.ts [--rounds 5] [--seconds 3] [--warmup 1] [--concurrency 8] [--samples 20]
// @bench-quick-args --rounds 1 --seconds 0.3 --warmup 0.1 --samples 2
import { mkdtemp, rm } from 'node:fs/promises';
import { connect as netConnect, createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { parseArgs } from 'node:util';
import { BENCH_IDS, writeBenchPki } from '../lib/bench-pki.ts';
import { IpcChild } from '../lib/ipc-child.ts';
import { median } from '../lib/median.ts';
import { StaticSvidSource } from '../../src/data-plane/identity/sources/static.ts';
import { KEY_EXCHANGE_GROUPS, KEY_EXCHANGE_MODES, MeshTls, negotiatedGroup, type KeyExchangeMode } from '../../src/data-plane/tls/mesh-tls.ts';

const HELP = `node bench/micro/tls-key-exchange.ts [options]

Mesh mTLS handshakes, full and resumed, per setting of MESHLET_TLS_KEY_EXCHANGE (classical:
X25519; hybrid, the default: X25519MLKEM768 with an X25519 share beside it; pq-only:
X25519MLKEM768 alone), client and server in separate processes (CPU of each), bench SVIDs.
See the header comment of this file for what each figure is.

  --rounds N        alternated rounds of every variant (default 5; medians and min–max)
  --seconds S       measured seconds per round and variant (default 3)
  --warmup S        warm-up seconds per variant before the first round (default 1)
  --concurrency N   handshakes in flight (default 8)
  --samples N       connections per variant through the byte-counting relay (default 20)
  --help            this text

The last line of output is one JSON object with the medians.`;

/** What each setting must negotiate with a peer of the same setting. */
const EXPECTED_GROUP: Readonly<Record<KeyExchangeMode, string>> = { classical: 'X25519', hybrid: 'X25519MLKEM768', 'pq-only': 'X25519MLKEM768' };

interface Variant {
  readonly name: string;
  readonly mode: KeyExchangeMode;
  readonly resumption: boolean;
}
const VARIANTS: readonly Variant[] = [false, true].flatMap((resumption) =>
  KEY_EXCHANGE_MODES.map((mode) => ({ name: `${mode}, ${resumption ? 'resumed' : 'full'}`, mode, resumption })),
);

interface Message {
  id: number;
  cmd: string;
  [k: string]: unknown;
}
interface RunResult {
  handshakes: number;
  /** Connections whose session was resumed. */
  resumed: number;
  failures: number;
  firstError: string | null;
  elapsedS: number;
  cpuUs: number;
  group: string | null;
}

function serveCommands(handle: (m: Message) => Promise<object>): void {
  process.on('message', (m: Message) => {
    handle(m).then(
      (r) => process.send!({ id: m.id, ...r }),
      (err: unknown) => process.send!({ id: m.id, error: (err as Error)?.stack ?? String(err) }),
    );
  });
  process.on('disconnect', () => process.exit(0));
}

const cpuUs = (): number => {
  const u = process.cpuUsage();
  return u.user + u.system;
};


const source = (pkiDir: string, who: 'client' | 'server'): Promise<StaticSvidSource> =>
  StaticSvidSource.fromPemFiles({ svid: join(pkiDir, `${who}.crt`), key: join(pkiDir, `${who}.key`), bundle: join(pkiDir, 'bundle.crt') });

// ---------------------------------------------------------------------------------------------
// Server process: one mesh mTLS listener per variant.

async function runServer(pkiDir: string): Promise<void> {
  const svid = await source(pkiDir, 'server');
  const ports: Record<string, number> = {};
  for (const { name, mode, resumption } of VARIANTS) {
    const mesh = new MeshTls(svid, { sessionResumption: resumption, keyExchange: mode });
    const server = createTlsServer(mesh.serverOptions(), (socket) => {
      socket.on('error', () => {});
      try {
        mesh.verifyClient(socket);
      } catch {
        socket.destroy();
        return;
      }
      socket.once('data', (d: Buffer) => socket.write(d));
    });
    server.on('tlsClientError', () => {});
    mesh.attachServer(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    ports[name] = (server.address() as AddressInfo).port;
  }
  serveCommands(async (m) => {
    if (m.cmd === 'cpu') return { cpuUs: cpuUs() };
    throw new Error(`unknown command ${m.cmd}`);
  });
  process.send!({ id: 0, ports });
}

// ---------------------------------------------------------------------------------------------
// Client process: full handshakes, `concurrency` in flight.

async function runClient(pkiDir: string): Promise<void> {
  const svid = await source(pkiDir, 'client');
  const meshes = new Map(VARIANTS.map((v) => [v.name, new MeshTls(svid, { sessionResumption: v.resumption, keyExchange: v.mode })]));
  const expected = { spiffeId: BENCH_IDS.server };

  /** One connection: handshake, 1 byte there and back (both identities verified), closed. Resolves with the negotiated group. */
  const once = (mesh: MeshTls, port: number): Promise<{ group: string | null; resumed: boolean }> =>
    new Promise((resolve, reject) => {
      const socket = mesh.connect({ host: '127.0.0.1', port }, expected);
      socket.once('secureConnect', () => {
        const done = { group: negotiatedGroup(socket), resumed: socket.isSessionReused() };
        socket.once('data', () => {
          socket.destroy();
          resolve(done);
        });
        socket.write('x');
      });
      socket.once('error', (err) => {
        socket.destroy();
        reject(err);
      });
    });

  serveCommands(async (m) => {
    if (m.cmd !== 'run') throw new Error(`unknown command ${m.cmd}`);
    const mesh = meshes.get(m.variant as string)!;
    const port = m.port as number;
    const until = m.count === undefined ? performance.now() + (m.seconds as number) * 1000 : Number.POSITIVE_INFINITY;
    let remaining = m.count === undefined ? Number.POSITIVE_INFINITY : (m.count as number);
    const r: RunResult = { handshakes: 0, resumed: 0, failures: 0, firstError: null, elapsedS: 0, cpuUs: 0, group: null };
    const worker = async (): Promise<void> => {
      while (performance.now() < until && remaining-- > 0) {
        try {
          const c = await once(mesh, port);
          r.group = c.group;
          r.handshakes++;
          if (c.resumed) r.resumed++;
        } catch (err) {
          r.failures++;
          r.firstError ??= String((err as Error).message);
        }
      }
    };
    const t0 = performance.now();
    const c0 = cpuUs();
    await Promise.all(Array.from({ length: m.count === undefined ? (m.concurrency as number) : 1 }, worker));
    r.cpuUs = cpuUs() - c0;
    r.elapsedS = (performance.now() - t0) / 1000;
    return r;
  });
  process.send!({ id: 0 });
}

// ---------------------------------------------------------------------------------------------
// The byte-counting relay (in the orchestrator, only for the bytes pass).

interface WireSample {
  toServer: number;
  toClient: number;
  clientHello: number;
  serverHello: number;
}

/** Size of the first plaintext handshake record (type 22) of one direction: the ClientHello or ServerHello. */
function firstHandshakeRecord(bytes: Buffer): number {
  for (let at = 0; at + 5 <= bytes.length; at += 5 + bytes.readUInt16BE(at + 3)) {
    if (bytes[at] === 22) return 5 + bytes.readUInt16BE(at + 3);
  }
  return 0;
}

async function countingRelay(target: number): Promise<{ port: number; samples: WireSample[]; close: () => Promise<void> }> {
  const samples: WireSample[] = [];
  const sockets = new Set<Socket>();
  const server: NetServer = createNetServer((client) => {
    const upstream = netConnect(target, '127.0.0.1');
    const up: Buffer[] = [];
    const down: Buffer[] = [];
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.setNoDelay(true);
      s.on('error', () => {});
    }
    client.on('data', (d: Buffer) => {
      up.push(d);
      upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      down.push(d);
      client.write(d);
    });
    let closed = 0;
    const done = (): void => {
      if (++closed < 2) return;
      const u = Buffer.concat(up);
      const d = Buffer.concat(down);
      samples.push({ toServer: u.length, toClient: d.length, clientHello: firstHandshakeRecord(u), serverHello: firstHandshakeRecord(d) });
    };
    client.once('close', () => {
      sockets.delete(client);
      upstream.destroy();
      done();
    });
    upstream.once('close', () => {
      sockets.delete(upstream);
      client.destroy();
      done();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    samples,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

// ---------------------------------------------------------------------------------------------

function spread(xs: readonly number[], digits = 0): string {
  if (xs.length === 0) return '—';
  const f = (x: number) => x.toFixed(digits);
  const m = f(median(xs));
  return xs.length === 1 ? m : `${m} (${f(Math.min(...xs))}–${f(Math.max(...xs))})`;
}

interface Sample {
  rate: number;
  resumedShare: number;
  clientUs: number;
  serverUs: number;
}

async function orchestrate(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '5' },
      seconds: { type: 'string', default: '3' },
      warmup: { type: 'string', default: '1' },
      concurrency: { type: 'string', default: '8' },
      samples: { type: 'string', default: '20' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    return;
  }
  const rounds = Number(values.rounds);
  const seconds = Number(values.seconds);
  const warmup = Number(values.warmup);
  const concurrency = Number(values.concurrency);
  const sampleCount = Number(values.samples);
  if (![rounds, seconds, warmup, concurrency, sampleCount].every((x) => Number.isFinite(x) && x > 0) || ![rounds, concurrency, sampleCount].every(Number.isInteger)) {
    process.stderr.write(`tls-key-exchange: bad arguments (positive numbers; --rounds, --concurrency and --samples integers)\n\n${HELP}\n`);
    process.exitCode = 2;
    return;
  }
  const pkiDir = await mkdtemp(join(tmpdir(), 'meshlet-kex-bench-'));
  const children: IpcChild[] = [];
  try {
    await writeBenchPki(pkiDir);
    const server = new IpcChild(import.meta.filename, 'serve', [pkiDir]);
    children.push(server);
    const ports = (await server.ready).ports as Record<string, number>;
    const client = new IpcChild(import.meta.filename, 'client', [pkiDir]);
    children.push(client);
    await client.ready;

    const runOnce = async (v: Variant, s: number): Promise<Sample> => {
      const before = await server.ask<{ cpuUs: number }>('cpu');
      const r = await client.ask<RunResult>('run', { variant: v.name, port: ports[v.name], seconds: s, concurrency });
      const after = await server.ask<{ cpuUs: number }>('cpu');
      if (r.failures > 0) throw new Error(`${v.name}: ${r.failures} of ${r.handshakes + r.failures} handshakes failed; first: ${r.firstError}`);
      if (r.group !== EXPECTED_GROUP[v.mode]) throw new Error(`${v.name}: negotiated ${r.group}, expected ${EXPECTED_GROUP[v.mode]}`);
      if (!v.resumption && r.resumed > 0) throw new Error(`${v.name}: ${r.resumed} connections resumed with resumption off`);
      const n = Math.max(1, r.handshakes);
      return { rate: r.handshakes / r.elapsedS, resumedShare: r.resumed / n, clientUs: r.cpuUs / n, serverUs: (after.cpuUs - before.cpuUs) / n };
    };

    for (const v of VARIANTS) await runOnce(v, warmup);
    const results = new Map<string, Sample[]>(VARIANTS.map((v) => [v.name, []]));
    for (let round = 0; round < rounds; round++) {
      for (let k = 0; k < VARIANTS.length; k++) {
        const v = VARIANTS[(k + round) % VARIANTS.length]!;
        results.get(v.name)!.push(await runOnce(v, seconds));
      }
    }

    // After the rounds, every resuming client holds a session for its destination already; the
    // relay is a new destination (another port), so its first connection is a full handshake.
    const wire = new Map<string, WireSample[]>();
    for (const v of VARIANTS) {
      const relay = await countingRelay(ports[v.name]!);
      const count = v.resumption ? sampleCount + 1 : sampleCount;
      const r = await client.ask<RunResult>('run', { variant: v.name, port: relay.port, count });
      if (r.failures > 0) throw new Error(`${v.name} through the relay: ${r.failures} failed; first: ${r.firstError}`);
      const deadline = Date.now() + 5000;
      while (relay.samples.length < count && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
      await relay.close();
      wire.set(v.name, v.resumption ? relay.samples.slice(1) : relay.samples);
    }

    const w = Math.max(...VARIANTS.map((v) => v.name.length)) + 2;
    const out: string[] = [];
    out.push(`tls-key-exchange: mesh mTLS handshakes on loopback (MeshTls, both SVIDs verified), bench SVIDs (ECDSA P-256), client and server in separate processes (injector's node flags), ${concurrency} in flight, ${rounds} alternated round(s) of ${seconds} s, medians (min–max)`);
    out.push(`${'variant'.padEnd(w)}${'group'.padEnd(17)}${'handshakes/s'.padEnd(22)}${'client CPU µs/hs'.padEnd(22)}${'server CPU µs/hs'.padEnd(22)}resumed`);
    for (const v of VARIANTS) {
      const s = results.get(v.name)!;
      out.push(`${v.name.padEnd(w)}${EXPECTED_GROUP[v.mode].padEnd(17)}${spread(s.map((x) => x.rate)).padEnd(22)}${spread(s.map((x) => x.clientUs)).padEnd(22)}${spread(s.map((x) => x.serverUs)).padEnd(22)}${(median(s.map((x) => x.resumedShare)) * 100).toFixed(1)} %`);
    }
    out.push(`(groups offered: ${KEY_EXCHANGE_MODES.map((m) => `${m} '${KEY_EXCHANGE_GROUPS[m]}'`).join(', ')})`);
    out.push('');
    out.push(`bytes on the wire per connection (TCP payload, medians of ${sampleCount} connections through a counting relay: the handshake, 1 byte each way, the server's two session tickets)`);
    out.push(`${'variant'.padEnd(w)}${'ClientHello'.padEnd(14)}${'ServerHello'.padEnd(14)}${'client->server'.padEnd(17)}server->client`);
    for (const v of VARIANTS) {
      const s = wire.get(v.name)!;
      const med = (f: (x: WireSample) => number) => String(median(s.map(f)));
      out.push(`${v.name.padEnd(w)}${med((x) => x.clientHello).padEnd(14)}${med((x) => x.serverHello).padEnd(14)}${med((x) => x.toServer).padEnd(17)}${med((x) => x.toClient)}`);
    }
    process.stdout.write(`${out.join('\n')}\n`);

    const round1 = (x: number) => Math.round(x * 10) / 10;
    const figures: Record<string, unknown> = { bench: 'tls-key-exchange', rounds, seconds, concurrency };
    for (const v of VARIANTS) {
      const s = results.get(v.name)!;
      const b = wire.get(v.name)!;
      figures[v.name] = {
        group: EXPECTED_GROUP[v.mode],
        resumedShare: Math.round(median(s.map((x) => x.resumedShare)) * 1000) / 1000,
        handshakesPerSec: Math.round(median(s.map((x) => x.rate))),
        clientCpuUsPerHandshake: round1(median(s.map((x) => x.clientUs))),
        serverCpuUsPerHandshake: round1(median(s.map((x) => x.serverUs))),
        clientHelloBytes: median(b.map((x) => x.clientHello)),
        serverHelloBytes: median(b.map((x) => x.serverHello)),
        bytesToServer: median(b.map((x) => x.toServer)),
        bytesToClient: median(b.map((x) => x.toClient)),
      };
    }
    process.stdout.write(`${JSON.stringify(figures)}\n`);
  } finally {
    for (const c of children) c.stop();
    await rm(pkiDir, { recursive: true, force: true });
  }
}

if (process.argv[2] === 'serve') await runServer(process.argv[3]!);
else if (process.argv[2] === 'client') await runClient(process.argv[3]!);
else await orchestrate();

