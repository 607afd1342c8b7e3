// A stand-in app that listens the way most servers do by default: on `::`, dual-stack, so it
// accepts IPv6 callers as well as IPv4 ones (Node's `listen(port)`, Go's `:8080`, nginx
// `listen [::]:80`). echo-app.ts listens on 0.0.0.0 only, which no IPv6 caller can reach
// anyway; this one is what an IPv6 bypass of the sidecar would actually hit.
//
//   node test/e2e/apps/dual-stack-echo.ts NAME PORT[,PORT…]
//
// Answers every request with JSON {app, port, method, path, peer, remote} (peer: the
// x-meshlet-peer-identity header the sidecar sets; remote: the TCP peer address, loopback when
// the sidecar forwarded it) and logs one `seen {...}` line per request on stdout.
import { createServer } from 'node:http';

const [name, portList] = process.argv.slice(2);
if (!name || !portList) {
  console.error('usage: dual-stack-echo.ts NAME PORT[,PORT…]');
  process.exit(2);
}
for (const port of portList.split(',').map(Number)) {
  const server = createServer((req, res) => {
    const peer = req.headers['x-meshlet-peer-identity'];
    const seen = { app: name, port, method: req.method ?? '', path: req.url ?? '', peer: typeof peer === 'string' ? peer : null, remote: req.socket.remoteAddress ?? '' };
    process.stdout.write(`seen ${JSON.stringify(seen)}\n`);
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(seen));
    });
  });
  server.listen({ port, host: '::', ipv6Only: false }, () => process.stdout.write(`listening ${port}\n`));
}
process.on('SIGTERM', () => process.exit(0));
