// CPU cost of each leg of a proxy, measured alone, to see where a sidecar's per-request CPU goes:
//   server leg: node:http answering a 1 KB body itself (CPU of the server process under
//     autocannon, 16 keep-alive connections), next to its floor: a net server that only finds
//     each request's end and writes a prebuilt response — no parsing, no checks, not a server
//     anyone should run, but the least any server leg on Node's sockets can cost (what a leaner
//     leg than node:http could save at most, docs/performance.md);
//   client leg: keep-alive requests from undici dispatch(), from meshlet's own Http1Pool
//     (src/data-plane/proxy/upstream/http1-pool.ts, same dispatch() contract) and from http.request +
//     http.Agent (CPU of this process, 16 in flight, against the server process).
// Run: node bench/micro/leg-costs.ts [--requests 40000] [--seconds 5]
// @bench-quick-args --requests 2000 --seconds 0.5
import { spawn } from 'node:child_process';
import * as http from 'node:http';
import * as net from 'node:net';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { Pool } from 'undici';
import { cpuSeconds } from '../lib/process-usage.ts';
import { Http1Pool } from '../../src/data-plane/proxy/upstream/http1-pool.ts';
import { resolveProxySettings } from '../../src/data-plane/proxy/config.ts';
import { ConnectionRegistry } from '../../src/data-plane/proxy/connection-registry.ts';

const BODY = Buffer.alloc(1024, 120);

if (process.argv[2] === 'serve') {
  const server = http.createServer({ noDelay: true }, (_req, res) => {
    res.writeHead(200, ['content-type', 'text/plain', 'content-length', '1024']);
    res.end(BODY);
  });
  server.listen(0, '127.0.0.1', () => process.stdout.write(`${(server.address() as { port: number }).port}\n`));
} else if (process.argv[2] === 'serve-floor') {
  const RESPONSE = Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 1024\r\n\r\n'), BODY]);
  const END = Buffer.from('\r\n\r\n');
  const server = net.createServer({ noDelay: true }, (socket) => {
    let rest: Buffer | null = null;
    socket.on('data', (chunk: Buffer) => {
      const buf = rest === null ? chunk : Buffer.concat([rest, chunk]);
      let from = 0;
      let answers = 0;
      for (let at = buf.indexOf(END, from); at >= 0; at = buf.indexOf(END, from)) {
        answers++;
        from = at + END.length;
      }
      rest = from < buf.length ? buf.subarray(from) : null;
      if (answers === 1) socket.write(RESPONSE);
      else if (answers > 1) socket.write(Buffer.concat(Array.from({ length: answers }, () => RESPONSE)));
    });
    socket.on('error', () => socket.destroy());
  });
  server.listen(0, '127.0.0.1', () => process.stdout.write(`${(server.address() as { port: number }).port}\n`));
} else {
  const { values } = parseArgs({ options: { requests: { type: 'string', default: '40000' }, seconds: { type: 'string', default: '5' } } });
  const total = Number(values.requests);
  const seconds = Number(values.seconds);
  const CONCURRENCY = 16;
  const startServer = async (mode: string) => {
    const proc = spawn(process.execPath, [import.meta.filename, mode], { stdio: ['ignore', 'pipe', 'inherit'] });
    const listening = await new Promise<number>((resolve) => proc.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
    return { proc, port: listening };
  };
  const serverLeg = async (port: number, pid: number, what: string) => {
    const url = `http://127.0.0.1:${port}/`;
    await autocannon({ url, connections: 4, duration: Math.min(1, seconds) }); // warm-up
    const before = cpuSeconds(pid);
    const r = await autocannon({ url, connections: CONCURRENCY, duration: seconds });
    if (r.errors + r.timeouts + r.non2xx > 0) throw new Error(`${what}: ${r.errors} errors, ${r.timeouts} timeouts, ${r.non2xx} non-2xx`);
    return ((cpuSeconds(pid) - before) / r.requests.total) * 1000;
  };
  const { proc: child, port } = await startServer('serve');
  const floor = await startServer('serve-floor');
  try {
    for (let round = 0; round < 2; round++) {
      const server = await serverLeg(port, child.pid!, 'server leg');
      process.stdout.write(`server leg (node:http, 1 KB body):    ${server.toFixed(4)} CPU s / 1k requests\n`);
      const least = await serverLeg(floor.port, floor.proc.pid!, 'server leg floor');
      process.stdout.write(`server leg floor (net, framing only): ${least.toFixed(4)} CPU s / 1k requests\n`);
    }

    const headers = ['host', 'upstream', 'user-agent', 'bench', 'accept', '*/*'];
    const pool = new Pool(`http://127.0.0.1:${port}`, { connections: CONCURRENCY, pipelining: 1 });
    const lean = new Http1Pool({ label: 'leg-costs server', host: '127.0.0.1', port }, {
      settings: resolveProxySettings({ limits: { maxConnectionsPerUpstream: CONCURRENCY } }),
      registry: new ConnectionRegistry(),
      direction: 'inbound',
    });
    const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
    const handler = (done: () => void) => ({
      onConnect() {},
      onHeaders: () => true,
      onData: () => true,
      onComplete: done,
      onError(err: Error) {
        throw err;
      },
    });
    const viaUndici = (done: () => void): void => void pool.dispatch({ path: '/', method: 'GET', headers, body: null }, handler(done));
    const viaLean = (done: () => void): void => void lean.dispatch({ path: '/', method: 'GET', headers, body: null }, handler(done));
    const viaHttp = (done: () => void): void => {
      http
        .request({ agent, host: '127.0.0.1', port, path: '/', method: 'GET', headers, setHost: false }, (res) => {
          res.on('data', () => {});
          res.on('end', done);
        })
        .end();
    };
    const closedLoop = (send: (done: () => void) => void): Promise<number> =>
      new Promise((resolve) => {
        const t0 = process.cpuUsage();
        let started = 0;
        let finished = 0;
        const next = (): void => {
          if (++finished === total) {
            const t = process.cpuUsage(t0);
            resolve(((t.user + t.system) / 1e6 / total) * 1000);
          } else if (started < total) {
            started++;
            send(next);
          }
        };
        for (let i = 0; i < CONCURRENCY; i++) {
          started++;
          send(next);
        }
      });
    // Alternate, twice each, so drift hits both.
    for (let round = 0; round < 2; round++) {
      process.stdout.write(`client leg, undici dispatch():        ${(await closedLoop(viaUndici)).toFixed(4)} CPU s / 1k requests\n`);
      process.stdout.write(`client leg, meshlet Http1Pool:        ${(await closedLoop(viaLean)).toFixed(4)} CPU s / 1k requests\n`);
      process.stdout.write(`client leg, http.request + http.Agent: ${(await closedLoop(viaHttp)).toFixed(4)} CPU s / 1k requests\n`);
    }
    await pool.close();
    await lean.destroy();
    agent.destroy();
  } finally {
    child.kill('SIGTERM');
    floor.proc.kill('SIGTERM');
  }
}
