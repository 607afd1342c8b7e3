// The app container of the e2e mesh pods: a small HTTP server on every port it is given.
// It answers each request with what it saw (its name, the port, the path, the caller
// identity header the sidecar set) and logs one `seen {...}` JSON line per request on stdout,
// so a test knows exactly which requests reached the app — and which never did.
//
//   node test/e2e/apps/echo-app.ts NAME PORT[,PORT…] [--ready-file PATH] [--grpc PORT]
//
// With --grpc it also serves shop.v1.Orders (orders-grpc.ts) on PORT, h2c, and logs each call
// the same way (`method` POST, `path` /shop.v1.Orders/<Method>).
// GET /healthz answers 200 once --ready-file exists and 503 before (a readiness the test
// controls, to prove a probe returns the app's own status through the sidecar's admin port).
// Every other path answers 200 with the JSON description. Listens on 0.0.0.0, like a real
// app, so only iptables keeps the network off its ports.
import { existsSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { Server, ServerCredentials, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import { ORDERS_SERVICE, type OrderReply, type OrderRequest } from './orders-grpc.ts';

const PEER_HEADER = 'x-meshlet-peer-identity';

interface Seen {
  app: string;
  port: number;
  method: string;
  path: string;
  peer: string | null;
  uid: number;
}

function main(argv: string[]): void {
  const [name, portList, ...rest] = argv;
  if (!name || !portList) throw new Error('usage: echo-app.ts NAME PORT[,PORT…] [--ready-file PATH] [--grpc PORT]');
  const option = (flag: string) => (rest.includes(flag) ? rest[rest.indexOf(flag) + 1] : undefined);
  const readyFile = option('--ready-file');
  const grpcPort = option('--grpc');
  if (grpcPort !== undefined) serveGrpc(name, Number(grpcPort));
  const ports = portList.split(',').map(Number);

  for (const port of ports) {
    const server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const peer = req.headers[PEER_HEADER];
      const seen: Seen = { app: name, port, method: req.method ?? '', path: req.url ?? '', peer: typeof peer === 'string' ? peer : null, uid: process.getuid?.() ?? -1 };
      process.stdout.write(`seen ${JSON.stringify(seen)}\n`);
      req.resume();
      req.on('end', () => {
        if (seen.path === '/healthz') {
          const ready = readyFile === undefined || existsSync(readyFile);
          res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' });
          res.end(ready ? 'ok\n' : 'warming up\n');
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(seen));
      });
    });
    server.listen(port, '0.0.0.0', () => process.stdout.write(`listening ${port}\n`));
  }
  process.on('SIGTERM', () => process.exit(0));
}

function serveGrpc(name: string, port: number): void {
  const server = new Server();
  const handler = (path: string) => (call: ServerUnaryCall<OrderRequest, OrderReply>, callback: sendUnaryData<OrderReply>) => {
    const [peer] = call.metadata.get(PEER_HEADER);
    const seen: Seen = { app: name, port, method: 'POST', path, peer: typeof peer === 'string' ? peer : null, uid: process.getuid?.() ?? -1 };
    process.stdout.write(`seen ${JSON.stringify(seen)}\n`);
    callback(null, { id: call.request.id, app: name, peer: seen.peer });
  };
  server.addService(ORDERS_SERVICE, { GetOrder: handler(ORDERS_SERVICE.GetOrder.path), DeleteOrder: handler(ORDERS_SERVICE.DeleteOrder.path) });
  server.bindAsync(`0.0.0.0:${port}`, ServerCredentials.createInsecure(), (err) => {
    if (err) throw err;
    process.stdout.write(`listening ${port} (grpc)\n`);
  });
}

main(process.argv.slice(2));
