// An app whose probes kubelet cannot reach under STRICT without the sidecar's help: a gRPC
// server with the standard health service (grpc.health.v1.Health, test/fixtures/grpc/health.proto)
// on a declared port, and an HTTP /healthz on a port the pod spec does not declare (like
// ingress-nginx's 10254). The serving status is read from --status-file on every call
// (SERVING when the file is absent), so the test can flip it.
//
//   node test/e2e/apps/grpc-health-app.ts GRPC_PORT HTTP_PORT --status-file PATH
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const [grpcPort, httpPort, flag, statusFile] = process.argv.slice(2);
if (!grpcPort || !httpPort || flag !== '--status-file' || !statusFile) throw new Error('usage: grpc-health-app.ts GRPC_PORT HTTP_PORT --status-file PATH');

const status = () => (existsSync(statusFile) ? readFileSync(statusFile, 'utf8').trim() : 'SERVING');

const pkg = protoLoader.loadSync(fileURLToPath(new URL('../../fixtures/grpc/health.proto', import.meta.url)), { keepCase: true, enums: String, defaults: true });
const health = (grpc.loadPackageDefinition(pkg) as any).grpc.health.v1.Health;
const server = new grpc.Server();
server.addService(health.service, {
  Check(call: grpc.ServerUnaryCall<{ service: string }, unknown>, callback: grpc.sendUnaryData<unknown>) {
    console.log(`seen ${JSON.stringify({ grpc: 'Check', service: call.request.service, status: status() })}`);
    callback(null, { status: status() });
  },
});
server.bindAsync(`0.0.0.0:${grpcPort}`, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) throw err;
});

createServer((req, res) => {
  console.log(`seen ${JSON.stringify({ http: req.url })}`);
  res.writeHead(req.url === '/healthz' ? 200 : 404, { 'content-type': 'text/plain' });
  res.end('ok\n');
}).listen(Number(httpPort), '0.0.0.0');
