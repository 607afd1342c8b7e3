import * as grpc from '@grpc/grpc-js';

/**
 * The gRPC unary scenario's service, `bench.v1.Echo/Echo`: a 100-byte request, a 1 KB reply.
 * Messages are raw bytes (identity serializers), so no protobuf encoding cost lands in the
 * figures — only what grpc-js, HTTP/2 and the proxies in between cost.
 */
export const ECHO_SERVICE = 'bench.v1.Echo';
export const ECHO_REQUEST = Buffer.alloc(100, 'q');
export const ECHO_REPLY = Buffer.alloc(1024, 'r');

const identity = (b: Buffer) => b;

export const echoDefinition: grpc.ServiceDefinition = {
  Echo: {
    path: `/${ECHO_SERVICE}/Echo`,
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

export const EchoClient = grpc.makeGenericClientConstructor(echoDefinition, 'Echo');

/** One unary call; resolves with the reply's length. */
export function callEcho(client: grpc.Client, deadlineMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest<Buffer, Buffer>(echoDefinition.Echo!.path, identity, identity, ECHO_REQUEST, { deadline: Date.now() + deadlineMs }, (err, reply) => {
      if (err) reject(err);
      else resolve(reply!.length);
    });
  });
}
