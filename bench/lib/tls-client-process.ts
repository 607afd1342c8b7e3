// The TLS-passthrough scenario's app: a node:tls client run INSIDE a network-namespace pod (the
// meshed one, whose outbound TCP iptables redirects to its sidecar, or the plain one), so its
// connections are intercepted exactly as an app's are. The bench drives it over stdin, one JSON
// command per line, and reads one `result <id> <json>` line back per command:
//   {"id":1,"mode":"persistent"|"new","host":"10.213.x.y","port":8443,"servername":"…","concurrency":8,"seconds":5}
// persistent: `concurrency` TLS connections opened (and each used once) before the clock starts,
//   then closed-loop 1 KB echo round trips, one in flight per connection; each round trip timed.
// new: `concurrency` closed-loop callers, each: TCP connect + full TLS 1.3 handshake (no session
//   resumption) + one 1 KB round trip + FIN and wait for the server's; each connection timed.
//   node bench/lib/tls-client-process.ts CA_FILE
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import * as tls from 'node:tls';
import { runClosedLoop } from './closed-loop.ts';
import { connectRoundTripClose, EchoConnection, runRoundTrips } from './echo-client.ts';

interface Command {
  id: number;
  mode: 'persistent' | 'new';
  host: string;
  port: number;
  servername: string;
  concurrency: number;
  seconds: number;
}

const ca = readFileSync(process.argv[2] ?? '');
function connect(c: Command): tls.TLSSocket {
  // The server's chain is verified against its CA; its name is not (an SVID-style certificate
  // carries a URI SAN). No `session`: every connection is a full handshake.
  const socket = tls.connect({ host: c.host, port: c.port, servername: c.servername, ca, minVersion: 'TLSv1.3', checkServerIdentity: () => undefined });
  socket.setNoDelay(true);
  return socket;
}

async function persistent(c: Command) {
  let conns: EchoConnection[];
  try {
    conns = await Promise.all(Array.from({ length: c.concurrency }, () => EchoConnection.open(connect(c), 'secureConnect')));
    await Promise.all(conns.map((x) => x.roundTrip()));
  } catch (err) {
    return { opened: false as const, firstError: `could not open ${c.concurrency} TLS connections to ${c.host}:${c.port}: ${(err as Error).message}` };
  }
  return runRoundTrips(conns, c.seconds);
}

async function run(c: Command): Promise<Record<string, unknown>> {
  const r = c.mode === 'persistent' ? await persistent(c) : await runClosedLoop(c.concurrency, c.seconds, () => connectRoundTripClose(connect(c), 'secureConnect'));
  if ('opened' in r) return { operations: 0, errors: c.concurrency, firstError: r.firstError, elapsedSeconds: 0, latency: null };
  const latency = r.histogram.summary();
  r.histogram.destroy();
  return { operations: r.operations, errors: r.errors, firstError: r.firstError, elapsedSeconds: r.elapsedSeconds, latency };
}

// One command at a time, in order.
let queue = Promise.resolve();
createInterface({ input: process.stdin }).on('line', (line) => {
  if (!line.trim()) return;
  queue = queue.then(async () => {
    const c = JSON.parse(line) as Command;
    const out = await run(c).catch((err: Error) => ({ operations: 0, errors: 1, firstError: err.message, elapsedSeconds: 0, latency: null }));
    process.stdout.write(`result ${c.id} ${JSON.stringify(out)}\n`);
  });
});
process.stdout.write('client ready\n');
