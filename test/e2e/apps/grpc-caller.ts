// The gRPC client app of the e2e mesh pods: a plain-text gRPC client (@grpc/grpc-js) calling
// a service by name, as an unmodified app does; iptables send it to the pod's sidecar, which
// speaks h2 over mTLS to the peer.
//
//   node test/e2e/apps/grpc-caller.ts HOST:PORT METHOD[=ID] [METHOD[=ID]…]
//
// One unary call per argument, in order, on one channel; prints
// `result {"method","code","details","reply"}` per call (code 0 = OK).
import { credentials, makeGenericClientConstructor, Metadata, status, type CallOptions, type ServiceError } from '@grpc/grpc-js';
import { ORDERS_SERVICE, type OrderReply, type OrdersMethod } from './orders-grpc.ts';

type Unary = (req: { id: string }, metadata: Metadata, options: CallOptions, cb: (err: ServiceError | null, reply?: OrderReply) => void) => void;

const [target, ...calls] = process.argv.slice(2);
if (!target || calls.length === 0) {
  process.stderr.write('usage: grpc-caller.ts HOST:PORT METHOD[=ID]…\n');
  process.exit(2);
}
const Client = makeGenericClientConstructor(ORDERS_SERVICE, 'Orders');
// No TXT lookups for a service config: the pod's resolver is its hosts file only.
const client = new Client(target, credentials.createInsecure(), { 'grpc.service_config_disable_resolution': 1 }) as unknown as Record<OrdersMethod, Unary> & { close(): void };
for (const call of calls) {
  const [method, id = '1'] = call.split('=') as [OrdersMethod, string?];
  const result = await new Promise<{ method: string; code: number; details: string; reply: OrderReply | null }>((resolve) => {
    client[method]({ id }, new Metadata(), { deadline: Date.now() + 10_000 }, (err, reply) => resolve({ method, code: err ? err.code : status.OK, details: err ? err.details : '', reply: reply ?? null }));
  });
  process.stdout.write(`result ${JSON.stringify(result)}\n`);
}
client.close();
