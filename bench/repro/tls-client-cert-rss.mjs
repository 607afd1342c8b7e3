#!/usr/bin/env node
// Reproduction, for an upstream report: a Node.js TLS server that requests client
// certificates keeps several KB of resident memory per full handshake, for good.
//
// Self-contained on purpose (only node:* modules and the `openssl` command, no meshlet code),
// so it can be attached to a Node.js issue as is:
//
//   node bench/repro/tls-client-cert-rss.mjs [--handshakes N] [--no-client-cert] [--resume]
//
// It makes a throwaway CA, a server and a client certificate (ECDSA P-256, openssl), starts a
// 15-line `tls.createServer({ requestCert: true, rejectUnauthorized: true })` in a child process
// started with --expose-gc, and opens N sequential TLS 1.3 connections to it, each writing one
// byte and closing. Every 2,000 handshakes the server runs a full GC and reports its RSS and
// V8 heap; the last line is the growth per handshake over the second half of the run (start-up
// and the allocator's warm-up level off in the first). Measured on Node 24.21 (linux x64,
// OpenSSL 3.5.8 in Node), 20,000 handshakes: RSS 58 -> 228 MB and still growing, ~7 KB per
// handshake in the second half (14,000 -> 20,000: +27 MB), while the V8 heap stays at 6 MB; with
// --no-client-cert, or --resume (session tickets: no certificate after the first), RSS levels
// off near 117-124 MB (14,000 -> 20,000: +0.3-0.5 MB). The same linear growth with
// MALLOC_ARENA_MAX=1 (and, measured earlier, a low M_TRIM_THRESHOLD_): not malloc arenas.
import { execFileSync, fork } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import tls from 'node:tls';

const HELP = `Usage: node bench/repro/tls-client-cert-rss.mjs [--handshakes N] [--no-client-cert] [--resume]

Opens N (default 20000) sequential TLS 1.3 connections to a Node tls.Server in a child process and
prints the server's RSS and V8 heap (after a full GC) every 2,000 handshakes.
  --no-client-cert  the server does not request a client certificate (the control)
  --resume          the client resumes the previous session (tickets): no certificate after the first
`;

if (process.argv[2] === '--server') {
  // The server: nothing but a tls.Server that wants a client certificate.
  const [key, cert, ca, wantCert] = [process.env.KEY, process.env.CERT, process.env.CA, process.env.WANT_CERT === '1'];
  const server = tls.createServer({ key: readFileSync(key), cert: readFileSync(cert), ca: readFileSync(ca), requestCert: wantCert, rejectUnauthorized: wantCert, minVersion: 'TLSv1.3' }, (socket) => {
    socket.on('data', () => socket.end());
    socket.on('error', () => {});
  });
  server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
  process.on('message', () => {
    globalThis.gc();
    const m = process.memoryUsage();
    process.send({ rss: m.rss, heapUsed: m.heapUsed });
  });
} else {
  let args;
  try {
    args = parseArgs({ options: { handshakes: { type: 'string', default: '20000' }, 'no-client-cert': { type: 'boolean' }, resume: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } }).values;
  } catch (err) {
    process.stderr.write(`${err.message}\n\n${HELP}`);
    process.exit(2);
  }
  if (args.help) {
    process.stdout.write(HELP);
    process.exit(0);
  }
  const total = Number(args.handshakes);
  if (!Number.isInteger(total) || total < 1) {
    process.stderr.write(`--handshakes must be a positive integer\n`);
    process.exit(2);
  }
  const dir = mkdtempSync(join(tmpdir(), 'tls-rss-'));
  const ssl = (...a) => execFileSync('openssl', a, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=repro CA');
  for (const name of ['server', 'client']) {
    ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    writeFileSync(join(dir, `${name}.ext`), name === 'server' ? 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' : 'extendedKeyUsage=clientAuth\n');
    ssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', '-extfile', `${name}.ext`);
  }
  const file = (n) => readFileSync(join(dir, n));
  const wantCert = !args['no-client-cert'];
  const server = fork(process.argv[1], ['--server'], {
    execArgv: ['--expose-gc'],
    env: { ...process.env, KEY: join(dir, 'server.key'), CERT: join(dir, 'server.crt'), CA: join(dir, 'ca.crt'), WANT_CERT: wantCert ? '1' : '0' },
  });
  const next = () => new Promise((resolve) => server.once('message', resolve));
  const { port } = await next();
  const measure = async () => {
    server.send('measure');
    return next();
  };
  const mb = (b) => (b / 1048576).toFixed(1);
  const clientOpts = { host: '127.0.0.1', port, ca: file('ca.crt'), key: wantCert ? file('client.key') : undefined, cert: wantCert ? file('client.crt') : undefined, minVersion: 'TLSv1.3' };
  let session;
  const handshake = () =>
    new Promise((resolve, reject) => {
      const s = tls.connect({ ...clientOpts, session: args.resume ? session : undefined }, () => s.write('x'));
      s.on('session', (t) => (session = t));
      s.on('data', () => {});
      s.on('end', () => s.end());
      s.on('close', resolve);
      s.on('error', reject);
    });
  process.stdout.write(`node ${process.version}, OpenSSL ${process.versions.openssl}; client certificate ${wantCert ? 'requested' : 'not requested'}, resumption ${args.resume ? 'on' : 'off'}\n`);
  process.stdout.write('handshakes   server RSS MB   V8 heap used MB\n');
  const first = await measure();
  process.stdout.write(`${'0'.padStart(10)}   ${mb(first.rss).padStart(13)}   ${mb(first.heapUsed).padStart(15)}\n`);
  let last = first;
  let half = first;
  for (let i = 1; i <= total; i++) {
    await handshake();
    if (i % 2000 === 0 || i === total) {
      last = await measure();
      if (i <= total / 2) half = { ...last, at: i };
      process.stdout.write(`${String(i).padStart(10)}   ${mb(last.rss).padStart(13)}   ${mb(last.heapUsed).padStart(15)}\n`);
    }
  }
  // The second half tells steady growth from start-up and allocator warm-up, which level off.
  const since = half.at ?? 0;
  process.stdout.write(`growth after ${since} handshakes: ${((last.rss - half.rss) / Math.max(1, total - since) / 1024).toFixed(2)} KB of RSS per handshake\n`);
  server.kill();
  rmSync(dir, { recursive: true, force: true });
}
