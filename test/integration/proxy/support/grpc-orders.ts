import * as grpc from '@grpc/grpc-js';

/**
 * A tiny gRPC service for the mesh tests, defined without a .proto file: messages are JSON
 * (grpc-js takes any serializer), which keeps the test about the transport, not protobuf.
 * `shop.Orders/Get` (unary), `shop.Orders/Watch` (server streaming), `shop.Orders/Drop`
 * (unary, denied by the tests' policy).
 */
type Json = Record<string, unknown>;
const serialize = (v: Json): Buffer => Buffer.from(JSON.stringify(v));
const deserialize = (b: Buffer): Json => JSON.parse(b.toString()) as Json;
const method = (name: string, responseStream: boolean) => ({
  path: `/shop.Orders/${name}`,
  requestStream: false,
  responseStream,
  requestSerialize: serialize,
  requestDeserialize: deserialize,
  responseSerialize: serialize,
  responseDeserialize: deserialize,
});

export const ORDERS_SERVICE = {
  Get: method('Get', false),
  Watch: method('Watch', true),
  Drop: method('Drop', false),
} satisfies grpc.ServiceDefinition;

export interface OrdersClient extends grpc.Client {
  Get(req: Json, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: Json) => void): grpc.ClientUnaryCall;
  Watch(req: Json, md?: grpc.Metadata): grpc.ClientReadableStream<Json>;
  Drop(req: Json, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: Json) => void): grpc.ClientUnaryCall;
}

export const OrdersClientConstructor = grpc.makeGenericClientConstructor(ORDERS_SERVICE, 'Orders') as unknown as new (
  address: string,
  credentials: grpc.ChannelCredentials,
  options?: grpc.ChannelOptions,
) => OrdersClient;

/** What the gRPC app saw: every call with its method and metadata. */
export interface GrpcSeen {
  method: string;
  metadata: Record<string, unknown>;
}

/** Starts the orders gRPC server on 127.0.0.1 (plaintext: the sidecar in front terminates mTLS). */
export async function startOrdersServer(): Promise<{ server: grpc.Server; port: number; seen: GrpcSeen[] }> {
  const seen: GrpcSeen[] = [];
  const server = new grpc.Server();
  server.addService(ORDERS_SERVICE, {
    Get: (call: grpc.ServerUnaryCall<Json, Json>, cb: grpc.sendUnaryData<Json>) => {
      seen.push({ method: 'Get', metadata: call.metadata.getMap() });
      cb(null, { id: call.request.id, status: 'shipped', caller: call.metadata.get('x-meshlet-peer-identity') });
    },
    Watch: (call: grpc.ServerWritableStream<Json, Json>) => {
      seen.push({ method: 'Watch', metadata: call.metadata.getMap() });
      const n = Number(call.request.count);
      for (let i = 0; i < n; i++) call.write({ seq: i });
      call.end();
    },
    Drop: (call: grpc.ServerUnaryCall<Json, Json>, cb: grpc.sendUnaryData<Json>) => {
      seen.push({ method: 'Drop', metadata: call.metadata.getMap() });
      cb(null, { dropped: true });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { server, port, seen };
}

export function stopOrdersServer(server: grpc.Server): Promise<void> {
  return new Promise((resolve) => server.tryShutdown(() => resolve()));
}

/** A client that dials `port` (the outbound sidecar) and names `authority` in :authority, as a redirected app does. */
export function ordersClient(port: number, authority: string): OrdersClient {
  return new OrdersClientConstructor(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': authority });
}

export function unary(client: OrdersClient, name: 'Get' | 'Drop', req: Json, md = new grpc.Metadata()): Promise<Json> {
  return new Promise((resolve, reject) => client[name](req, md, (err, res) => (err ? reject(err) : resolve(res!))));
}

export function collect(stream: grpc.ClientReadableStream<Json>): Promise<Json[]> {
  return new Promise((resolve, reject) => {
    const out: Json[] = [];
    stream.on('data', (m: Json) => out.push(m));
    stream.on('error', reject);
    stream.on('end', () => resolve(out));
  });
}
