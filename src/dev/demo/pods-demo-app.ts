// The app container of each `meshlet demo --pods` pod, run by Node inside the pod under the
// app uid. It is an unmodified app: it serves plain HTTP on its port and calls other services
// by their cluster names with no proxy settings; the pod's iptables hand both directions to
// its sidecar, which carries them over mTLS.
//
//   node src/dev/demo/pods-demo-app.ts NAME PORT
//
// It answers every request with what it saw (`{service, method, path, caller}`, caller = the
// identity header its sidecar set), and on stdin takes `call ID METHOD URL` lines, answering
// each on stdout with `result ID {"status", "body"}` (status 0 and the error for a failed call).
import { Agent, createServer, request } from 'node:http';
import { createInterface } from 'node:readline';

const [name, port] = process.argv.slice(2);
if (!name || !port) {
  process.stderr.write('usage: pods-demo-app.ts NAME PORT\n');
  process.exit(2);
}

const server = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    const body = JSON.stringify({ service: name, method: req.method, path: req.url, caller: req.headers['x-meshlet-peer-identity'] ?? null });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
});
server.listen(Number(port), '0.0.0.0', () => process.stdout.write(`listening ${port}\n`));

// One keep-alive connection per destination, as a real client would hold: the mesh's
// /connections then shows one steady connection per pair.
const agent = new Agent({ keepAlive: true, maxSockets: 1 });

function call(id: string, method: string, url: string): void {
  const answer = (status: number, body: string) => process.stdout.write(`result ${id} ${JSON.stringify({ status, body })}\n`);
  const req = request(url, { method, agent, timeout: 10_000, headers: { 'content-length': '0' } }, (res) => {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (d: string) => (body += d));
    res.on('end', () => answer(res.statusCode ?? 0, body));
  });
  req.on('timeout', () => req.destroy(new Error('no answer in 10 s')));
  req.on('error', (err: NodeJS.ErrnoException) => answer(0, `${err.code ?? ''} ${err.message}`.trim()));
  req.end();
}

createInterface({ input: process.stdin }).on('line', (line) => {
  const [verb, id, method, url] = line.trim().split(/\s+/);
  if (verb === 'call' && id && method && url) call(id, method, url);
  else if (line.trim()) process.stderr.write(`pods-demo-app: ignoring ${JSON.stringify(line)}\n`);
});
process.on('SIGTERM', () => {
  agent.destroy();
  server.close();
  server.closeAllConnections();
  process.exit(0);
});
