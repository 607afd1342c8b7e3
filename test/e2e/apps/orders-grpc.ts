// The gRPC service the e2e apps speak: shop.v1.Orders with two unary methods. Messages are
// JSON (a custom codec), so no .proto file is needed: the mesh only sees HTTP/2 streams with
// `content-type: application/grpc` and paths /shop.v1.Orders/<Method>.
import type { ServiceDefinition } from '@grpc/grpc-js';

export interface OrderRequest {
  id: string;
}

export interface OrderReply {
  id: string;
  app: string;
  /** The x-meshlet-peer-identity metadata the sidecar added. */
  peer: string | null;
}

const json = {
  serialize: (value: unknown): Buffer => Buffer.from(JSON.stringify(value)),
  deserialize: (bytes: Buffer): unknown => JSON.parse(bytes.toString('utf8')),
};

function unary(path: string) {
  return {
    path,
    requestStream: false,
    responseStream: false,
    requestSerialize: json.serialize,
    requestDeserialize: json.deserialize as (b: Buffer) => OrderRequest,
    responseSerialize: json.serialize,
    responseDeserialize: json.deserialize as (b: Buffer) => OrderReply,
  } as const;
}

export const ORDERS_SERVICE = {
  GetOrder: unary('/shop.v1.Orders/GetOrder'),
  DeleteOrder: unary('/shop.v1.Orders/DeleteOrder'),
} satisfies ServiceDefinition;

export type OrdersMethod = keyof typeof ORDERS_SERVICE;
