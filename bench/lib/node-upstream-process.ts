// The upstream when nginx is missing: a node:http server answering every request with a 1 KB
// body, in its own process (its CPU must not be the sampler's or the load generator's).
//   node bench/lib/node-upstream-process.ts PORT
import * as http from 'node:http';

const body = Buffer.alloc(1024, 'x');
const server = http.createServer({ keepAliveTimeout: 120_000 }, (_req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
  res.end(body);
});
server.listen(Number(process.argv[2]), '127.0.0.1');
process.once('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
