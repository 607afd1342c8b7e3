// The gRPC upstream: grpc-js serving bench.v1.Echo in plaintext (h2c), in its own process.
//   node bench/lib/grpc-upstream-process.ts PORT
import * as grpc from '@grpc/grpc-js';
import { ECHO_REPLY, echoDefinition } from './grpc-echo.ts';

const server = new grpc.Server();
server.addService(echoDefinition, {
  Echo: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => callback(null, ECHO_REPLY),
});
server.bindAsync(`127.0.0.1:${process.argv[2]}`, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) {
    process.stderr.write(`grpc upstream: ${err.message}\n`);
    process.exit(1);
  }
});
process.once('SIGTERM', () => server.tryShutdown(() => process.exit(0)));
