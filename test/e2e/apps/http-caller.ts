// The calling app of the e2e mesh pods: plain HTTP to a service by name, as an unmodified
// app does — iptables sends it to the pod's sidecar, which carries it over mTLS.
//
//   node test/e2e/apps/http-caller.ts [-H NAME:VALUE]… once URL [URL…]
//       one request per URL, in order, on ONE keep-alive connection per host; prints
//       `result {"url","status","error","meshletError","body"}` per URL (a known number of
//       requests and connections, which the metrics test counts exactly).
//   node test/e2e/apps/http-caller.ts parallel URL [URL…]
//       all requests at once, each on its own connection (so the sidecar must open more
//       connections to the peer); prints the same `result` lines, in argument order.
//   node test/e2e/apps/http-caller.ts loop URL
//       requests URL back to back until stdin closes, then prints
//       `summary {"ok","failed","statuses","errors"}`; `progress N` every 10 requests. Every
//       fourth request opens a new connection, the rest reuse one, as real clients mix both.
//
// -H adds a request header to every request (e.g. a forged identity header the sidecars must
// replace). A request counts as failed when it errors or its status is not 200.
import { Agent, request } from 'node:http';

interface Result {
  url: string;
  status: number | null;
  error: string | null;
  meshletError: string | null;
  body: string;
}

const TIMEOUT_MS = 10_000;

const headers: Record<string, string> = {};

function call(url: string, agent: Agent | false): Promise<Result> {
  return new Promise((resolve) => {
    const req = request(url, { agent, timeout: TIMEOUT_MS, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => {
        const meshletError = res.headers['x-meshlet-error'];
        resolve({ url, status: res.statusCode ?? null, error: null, meshletError: typeof meshletError === 'string' ? meshletError : null, body });
      });
      res.on('error', (err: NodeJS.ErrnoException) => resolve({ url, status: res.statusCode ?? null, error: err.code ?? err.message, meshletError: null, body }));
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ url, status: null, error: err.code ?? err.message, meshletError: null, body: '' }));
    req.end();
  });
}

async function once(urls: string[]): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  for (const url of urls) process.stdout.write(`result ${JSON.stringify(await call(url, agent))}\n`);
  agent.destroy();
}

async function parallel(urls: string[]): Promise<void> {
  const results = await Promise.all(urls.map((url) => call(url, false)));
  for (const r of results) process.stdout.write(`result ${JSON.stringify(r)}\n`);
}

async function loop(url: string): Promise<void> {
  let stop = false;
  process.stdin.on('end', () => (stop = true)).resume();
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const statuses: Record<string, number> = {};
  const errors: Result[] = [];
  let ok = 0;
  let failed = 0;
  for (let n = 1; !stop; n++) {
    const r = await call(url, n % 4 === 0 ? false : agent);
    const key = r.error ?? String(r.status);
    statuses[key] = (statuses[key] ?? 0) + 1;
    if (r.error === null && r.status === 200) ok++;
    else {
      failed++;
      if (errors.length < 5) errors.push(r);
    }
    if (n % 10 === 0) process.stdout.write(`progress ${n}\n`);
  }
  agent.destroy();
  process.stdout.write(`summary ${JSON.stringify({ ok, failed, statuses, errors })}\n`);
}

const argv = process.argv.slice(2);
while (argv[0] === '-H' && argv[1] !== undefined) {
  const [, header] = argv.splice(0, 2) as [string, string];
  const colon = header.indexOf(':');
  headers[header.slice(0, colon).trim()] = header.slice(colon + 1).trim();
}
const [mode, ...args] = argv;
if (mode === 'once' && args.length > 0) await once(args);
else if (mode === 'parallel' && args.length > 0) await parallel(args);
else if (mode === 'loop' && args.length === 1) await loop(args[0]!);
else {
  process.stderr.write('usage: http-caller.ts once URL [URL…] | parallel URL [URL…] | loop URL\n');
  process.exit(2);
}
