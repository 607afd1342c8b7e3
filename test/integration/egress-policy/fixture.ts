import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as http from 'node:http';
import * as net from 'node:net';
import { Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { createRootCa, type CertificateAuthority } from '../../../src/control-plane/identity-service/ca.ts';
import { createLogger } from '../../../src/common/log/logger.ts';
import { readSidecarConfig } from '../../../src/data-plane/sidecar/sidecar-env.ts';
import { Sidecar } from '../../../src/data-plane/sidecar/sidecar.ts';
import { kubeletWrite } from '../../support/kubelet-volume.ts';
import { freePorts } from '../../support/free-port.ts';
import { svidFiles } from '../sidecar/mesh-of-two.ts';
import { OrdersClientConstructor, startOrdersServer, stopOrdersServer, type OrdersClient } from '../proxy/support/grpc-orders.ts';

/**
 * Issue 16 item 1 — a mesh of two real sidecars on loopback for the client side of the policy:
 * "orders" (HTTP, gRPC and TCP echo apps behind its inbound listeners, a server policy that lets
 * frontend in everywhere, so only frontend's client side decides) and "frontend", whose app is
 * played by the tests: they call its outbound listener in explicit mode (Host / :authority
 * routes; MESHLET_DESTINATION_ADDRESSES says where each name's peer sidecar listens) and its
 * MESHLET_OUTBOUND_TCP listener. Frontend's policy ConfigMap directory is written as kubelet
 * writes it, so tests reload it for real.
 */
export const ORDERS_ID = 'spiffe://cluster.local/ns/shop/sa/orders';
export const FRONTEND_ID = 'spiffe://cluster.local/ns/web/sa/frontend';
/** A destination frontend's client policy does not list (configured to reach orders' sidecar by trust domain only, or not reachable at all). */
export const OTHER_ID = 'spiffe://cluster.local/ns/shop/sa/other';

export type LogLine = Record<string, unknown>;

export interface EgressMesh {
  /** Where the app (the test) sends its HTTP and h2c: frontend's outbound listener. */
  outbound: number;
  /** Frontend's MESHLET_OUTBOUND_TCP listener, mapped to orders' opaque TCP port. */
  tcp: number;
  /** Orders' opaque listener port (the destination port frontend's client policy sees for the TCP mapping). */
  ordersTcpListener: number;
  frontendAdmin: number;
  frontend: Sidecar;
  orders: Sidecar;
  ordersAdmin: number;
  /** Orders' app ports (what its policy names). */
  ordersApps: { http: number; grpc: number; tcp: number; echo: number };
  /** Orders' inbound listener of an HTTP port whose app is a TCP echo (a meshed caller's own TLS inside mTLS is spliced to it). */
  ordersEchoListener: number;
  /** The mesh CA both SVIDs come from. */
  ca: CertificateAuthority;
  /** Writes orders' policy as kubelet does. */
  writeOrdersPolicy(text: string): Promise<void>;
  /** Every line frontend logged, parsed. */
  lines: LogLine[];
  /** What orders' HTTP app saw (method and url); gRPC calls; TCP connections accepted. */
  httpSeen: string[];
  grpcSeen: { method: string }[];
  tcpAccepted: () => number;
  /** Writes frontend's policy as kubelet does (atomic ..data swap). */
  writeFrontendPolicy(text: string): Promise<void>;
  close(): Promise<void>;
}

/** Frontend's policy: a client with destinations (the caller's side); `extra` is appended to its destinations. */
export function frontendPolicy(opts: { mode?: 'audit'; ordersTcpPort?: number } = {}): string {
  return `apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: web, namespace: web }
spec:
  clients:
    - name: frontend
      selector: { serviceAccount: frontend }
${opts.mode ? `      mode: ${opts.mode}\n` : ''}      destinations:
        - name: orders-http
          spiffeId: ${ORDERS_ID}
          ports: [80, 9090]
${opts.ordersTcpPort ? `        - name: orders-ledger\n          spiffeId: ${ORDERS_ID}\n          ports: [${opts.ordersTcpPort}]\n` : ''}`;
}

/** Orders' policy: `caller` (frontend by default) may call every port. */
export function ordersPolicy(p: { http: number; grpc: number; tcp: number; echo: number }, caller = FRONTEND_ID): string {
  return `apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: orders }
spec:
  servers:
    - name: orders
      selector: { serviceAccount: orders }
      ports:
        - { port: ${p.http}, protocol: http }
        - { port: ${p.grpc}, protocol: grpc }
        - { port: ${p.tcp}, protocol: tcp }
        - { port: ${p.echo}, protocol: http }
      routes:
        - name: frontend-anything
          callers:
            - spiffeId: ${caller}
`;
}

export async function egressMesh(frontendEnv: Record<string, string> = {}): Promise<EgressMesh> {
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-egress-policy-'));
  const ca = await createRootCa({ trustDomain: 'cluster.local' });
  const httpSeen: string[] = [];
  const httpApp = http.createServer((req, res) => {
    httpSeen.push(`${req.method} ${req.url}`);
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`orders saw ${req.url}`);
    });
  });
  let accepted = 0;
  const tcpApp = net.createServer((s) => {
    accepted++;
    s.pipe(s);
  });
  const echoApp = net.createServer((s) => {
    s.on('error', () => s.destroy());
    s.pipe(s);
  });
  for (const s of [httpApp, tcpApp, echoApp]) await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const grpcApp = await startOrdersServer();
  const apps = { http: (httpApp.address() as net.AddressInfo).port, grpc: grpcApp.port, tcp: (tcpApp.address() as net.AddressInfo).port, echo: (echoApp.address() as net.AddressInfo).port };
  const [oAdmin, oOutbound, oCatchAll, oHttp, oGrpc, oTcp, fAdmin, fOutbound, fCatchAll, fTcp, oEcho] = await freePorts(11);
  const ordersPolicyDir = join(dir, 'orders-policy');
  const frontendPolicyDir = join(dir, 'frontend-policy');
  await kubeletWrite(join(dir, 'orders-svid'), await svidFiles(ca, ORDERS_ID));
  await kubeletWrite(join(dir, 'frontend-svid'), await svidFiles(ca, FRONTEND_ID));
  await kubeletWrite(ordersPolicyDir, { 'policy.yaml': ordersPolicy(apps) });
  await kubeletWrite(frontendPolicyDir, { 'policy.yaml': frontendPolicy() });
  const common = { MESHLET_IDENTITY_SOURCE: 'files', MESHLET_ADMIN_ADDRESS: '127.0.0.1', MESHLET_DRAIN_TIMEOUT: '2s' };
  const quiet = createLogger({ name: 'sidecar', level: 'warn', destination: new Writable({ write: (_c, _e, cb) => cb() }) });
  const orders = new Sidecar(
    readSidecarConfig({
      ...common,
      MESHLET_NAMESPACE: 'shop',
      MESHLET_SERVICE_ACCOUNT: 'orders',
      MESHLET_SVID_DIR: join(dir, 'orders-svid'),
      MESHLET_POLICY_DIR: ordersPolicyDir,
      MESHLET_INBOUND_PORTS: `${apps.http}:${oHttp}/http,${apps.grpc}:${oGrpc}/grpc,${apps.tcp}:${oTcp}/tcp,${apps.echo}:${oEcho}/http`,
      MESHLET_INBOUND_CATCHALL_PORT: String(oCatchAll),
      MESHLET_ADMIN_PORT: String(oAdmin),
      MESHLET_OUTBOUND_PORT: String(oOutbound),
    }),
    { logger: quiet },
  );
  const lines: LogLine[] = [];
  const capture = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l !== '') lines.push(JSON.parse(l) as LogLine);
      cb();
    },
  });
  const frontendConfig = readSidecarConfig({
    ...common,
    MESHLET_NAMESPACE: 'web',
    MESHLET_SERVICE_ACCOUNT: 'frontend',
    MESHLET_POD_NAME: 'frontend-1',
    MESHLET_SVID_DIR: join(dir, 'frontend-svid'),
    MESHLET_POLICY_DIR: frontendPolicyDir,
    MESHLET_INBOUND_CATCHALL_PORT: String(fCatchAll),
    MESHLET_ADMIN_PORT: String(fAdmin),
    MESHLET_OUTBOUND_PORT: String(fOutbound),
    // orders.shop:80 and orders-grpc.shop:9090 prove ORDERS_ID; other.shop:80 reaches the same
    // sidecar but pins only the trust domain; other.shop:9090 names OTHER_ID (never dialled: refused first).
    MESHLET_DESTINATION_ADDRESSES: `orders.shop:80=127.0.0.1:${oHttp},orders-grpc.shop:9090=127.0.0.1:${oGrpc},other.shop:80=127.0.0.1:${oHttp},other.shop:9090=127.0.0.1:${oGrpc}`,
    MESHLET_DESTINATION_IDENTITIES: `orders.shop:80=${ORDERS_ID},orders-grpc.shop:9090=${ORDERS_ID},other.shop:9090=${OTHER_ID}`,
    MESHLET_OUTBOUND_TCP: `${fTcp}=127.0.0.1:${oTcp}@${ORDERS_ID}`,
    MESHLET_DECISION_LOG: 'all',
    ...frontendEnv,
  });
  const logger = createLogger({ name: 'sidecar', level: 'info', base: { pod: 'frontend-1', namespace: 'web' }, destination: capture });
  const frontend = new Sidecar(frontendConfig, { logger });
  await Promise.all([orders.start(), frontend.start()]);
  return {
    outbound: fOutbound!,
    tcp: fTcp!,
    ordersTcpListener: oTcp!,
    frontendAdmin: fAdmin!,
    frontend,
    orders,
    ordersAdmin: oAdmin!,
    ordersApps: apps,
    ordersEchoListener: oEcho!,
    ca,
    writeOrdersPolicy: (text) => kubeletWrite(ordersPolicyDir, { 'policy.yaml': text }),
    lines,
    httpSeen,
    grpcSeen: grpcApp.seen,
    tcpAccepted: () => accepted,
    writeFrontendPolicy: (text) => kubeletWrite(frontendPolicyDir, { 'policy.yaml': text }),
    async close() {
      await Promise.allSettled([frontend.stop(), orders.stop()]);
      await Promise.all([httpApp, tcpApp, echoApp].map((s) => new Promise((r) => s.close(r))));
      httpApp.closeAllConnections();
      await stopOrdersServer(grpcApp.server);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** The app's HTTP/1.1 request through frontend's outbound listener, routed by its Host. */
export function callThrough(outbound: number, host: string, path: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: outbound, path, agent: false, headers: { host } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** A real grpc-js client speaking h2c to frontend's outbound listener, with `authority` as :authority. */
export function grpcThrough(outbound: number, authority: string): OrdersClient {
  return new OrdersClientConstructor(`127.0.0.1:${outbound}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': authority });
}

export function unaryGet(client: OrdersClient): Promise<{ err: grpc.ServiceError | null; res: Record<string, unknown> | undefined }> {
  return new Promise((resolve) => client.Get({ id: 7 }, new grpc.Metadata(), (err, res) => resolve({ err, res })));
}

/** Opens a plain TCP connection to `port`, writes `text`; resolves with what came back before the close ('' when refused). */
export function tcpEcho(port: number, text: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => socket.write(text));
    let got = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      got += d;
      if (got.length >= text.length) socket.end();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(got));
  });
}

/** Polls `check` until true, at most `ms` (reloads and log lines are asynchronous). */
export async function until(check: () => boolean | Promise<boolean>, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The value of one sample of frontend's /metrics (0 when absent). */
export async function metric(admin: number, name: string, labels: Record<string, string>): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const inside = line.slice(name.length + 1, line.lastIndexOf('}'));
    const parts = inside.split(',');
    if (want.every((w) => parts.includes(w))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}
