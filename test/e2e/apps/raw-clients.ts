// The app side of the transparent-outbound e2e: what an unmodified app does on its own.
//
//   node test/e2e/apps/raw-clients.ts https URL          GET over its own TLS (server certificate
//        not verified: the test compares fingerprints); prints `result {"status","body","peerFingerprint","error"}`
//   node test/e2e/apps/raw-clients.ts greet HOST PORT    connects, reads the server's greeting, sends
//        "HELO app", reads the answer; prints `result {"lines":[…],"error"}`
//   node test/e2e/apps/raw-clients.ts echo HOST PORT     sends 4 binary bytes, reads them back;
//        prints `result {"echoed":"<hex>","error"}`
import { request } from 'node:https';
import { connect, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';

const [mode, a, b] = process.argv.slice(2);
const TIMEOUT_MS = 10_000;
const out = (r: unknown) => console.log(`result ${JSON.stringify(r)}`);
setTimeout(() => {
  out({ error: 'timeout' });
  process.exit(0);
}, TIMEOUT_MS).unref();

/** Reads lines from a socket as they come; next() resolves with the next one (null at close). */
function lineReader(socket: Socket): { next(): Promise<string | null> } {
  const queue: string[] = [];
  const waiting: ((l: string | null) => void)[] = [];
  let buf = '';
  let closed = false;
  socket.on('data', (d) => {
    buf += d.toString('latin1');
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i).trim();
      buf = buf.slice(i + 1);
      const w = waiting.shift();
      if (w) w(line);
      else queue.push(line);
    }
  });
  socket.on('close', () => {
    closed = true;
    for (const w of waiting.splice(0)) w(null);
  });
  return {
    next: () => (queue.length > 0 ? Promise.resolve(queue.shift()!) : closed ? Promise.resolve(null) : new Promise((r) => waiting.push(r))),
  };
}

if (mode === 'https') {
  const req = request(a!, { rejectUnauthorized: false, agent: false }, (res) => {
    let body = '';
    res.on('data', (d) => (body += d));
    res.on('end', () => {
      out({ status: res.statusCode, body, peerFingerprint: (res.socket as TLSSocket).getPeerCertificate().fingerprint256, error: null });
      process.exit(0);
    });
  });
  req.on('error', (err: NodeJS.ErrnoException) => {
    out({ status: null, error: err.code ?? err.message });
    process.exit(0);
  });
  req.end();
} else if (mode === 'greet') {
  const s = connect(Number(b), a!);
  const reader = lineReader(s);
  s.on('error', (err: NodeJS.ErrnoException) => {
    out({ lines: [], error: err.code ?? err.message });
    process.exit(0);
  });
  void (async () => {
    const greeting = await reader.next();
    s.write('HELO app\r\n');
    const answer = await reader.next();
    out({ lines: [greeting, answer], error: null });
    process.exit(0);
  })();
} else if (mode === 'echo') {
  const s = connect(Number(b), a!);
  const bytes = Buffer.from([0x00, 0xff, 0x13, 0x37]);
  s.once('connect', () => s.write(bytes));
  let got = Buffer.alloc(0);
  s.on('data', (d: Buffer) => {
    got = Buffer.concat([got, d]);
    if (got.length >= bytes.length) {
      out({ echoed: got.toString('hex'), error: null });
      process.exit(0);
    }
  });
  s.on('error', (err: NodeJS.ErrnoException) => {
    out({ echoed: null, error: err.code ?? err.message });
    process.exit(0);
  });
  s.on('close', () => {
    out({ echoed: got.length ? got.toString('hex') : null, error: 'closed' });
    process.exit(0);
  });
}
