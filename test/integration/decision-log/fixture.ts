import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as https from 'node:https';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { createRootCa, type CertificateAuthority } from '../../../src/control-plane/identity-service/ca.ts';
import { createLogger } from '../../../src/common/log/logger.ts';
import { readSidecarConfig } from '../../../src/data-plane/sidecar/sidecar-env.ts';
import { Sidecar } from '../../../src/data-plane/sidecar/sidecar.ts';
import { kubeletWrite } from '../../support/kubelet-volume.ts';
import { freePorts } from '../../support/free-port.ts';
import { svidFiles } from '../sidecar/mesh-of-two.ts';
import { OrdersClientConstructor, startOrdersServer, stopOrdersServer, type GrpcSeen, type OrdersClient } from '../proxy/support/grpc-orders.ts';

/**
 * One "orders" pod for the decision-log tests: real apps on loopback (HTTP, gRPC, TCP echo, and
 * an HTTP app on a PERMISSIVE port), a policy ConfigMap directory and SVID directory as kubelet
 * lays them out, and as many real in-process sidecars in front of them as a test wants, each
 * with its own env overrides (MESHLET_DECISION_LOG…) and its log captured line by line.
 * Callers connect straight to the sidecar's inbound listeners over mTLS with their own SVID.
 */
export const ORDERS_ID = 'spiffe://cluster.local/ns/shop/sa/orders';
export const FRONTEND_ID = 'spiffe://cluster.local/ns/web/sa/frontend';
/** Has a SVID but no route: denied by the server default. */
export const STRANGER_ID = 'spiffe://cluster.local/ns/misc/sa/stranger';

export interface AppPorts {
  http: number;
  grpc: number;
  tcp: number;
  permissive: number;
}

export function policyFor(p: AppPorts): string {
  return `apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: orders }
spec:
  servers:
    - name: orders
      selector: { serviceAccount: orders }
      default: deny
      ports:
        - { port: ${p.http}, protocol: http }
        - { port: ${p.grpc}, protocol: grpc }
        - { port: ${p.tcp}, protocol: tcp }
        - { port: ${p.permissive}, protocol: http }
      routes:
        - name: list-orders
          port: ${p.http}
          methods: [GET]
          path: { prefix: /orders }
          callers:
            - spiffeId: ${FRONTEND_ID}
        - name: admin
          port: ${p.http}
          path: { prefix: /admin }
          callers:
            - spiffeId: spiffe://cluster.local/ns/ops/sa/operator
        - name: get-order
          port: ${p.grpc}
          grpc: { service: shop.Orders, method: Get }
          callers:
            - spiffeId: ${FRONTEND_ID}
        - name: ledger
          port: ${p.tcp}
          callers:
            - spiffeId: ${FRONTEND_ID}
        - name: public
          port: ${p.permissive}
          callers:
            - unauthenticated: true
            - anyAuthenticated: true
`;
}

/** What the HTTP apps saw: method, url and the raw header list, per request. */
export interface SeenRequest {
  method: string;
  url: string;
  rawHeaders: string[];
}

export type LogLine = Record<string, unknown>;

export interface OrdersSidecar {
  sidecar: Sidecar;
  /** Every line the sidecar logged, parsed. */
  lines: LogLine[];
  /** The `authz_decision` lines only. */
  decisions(): LogLine[];
  inbound: { http: number; grpc: number; tcp: number; permissive: number };
  admin: number;
  stop(): Promise<void>;
}

export interface Caller {
  'tls.crt': string;
  'tls.key': string;
  'ca.crt': string;
}

export interface DecisionMesh {
  ca: CertificateAuthority;
  apps: AppPorts;
  seen: SeenRequest[];
  grpcSeen: GrpcSeen[];
  policy: string;
  /** sha256 (hex) of the policy file's bytes. */
  policyHash: string;
  frontend: Caller;
  stranger: Caller;
  /** A sidecar in front of the apps, the policy mounted unless `policy: false`. */
  start(env?: Record<string, string>, opts?: { policy?: boolean }): Promise<OrdersSidecar>;
  close(): Promise<void>;
}

export async function decisionMesh(): Promise<DecisionMesh> {
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-decision-log-'));
  const ca = await createRootCa({ trustDomain: 'cluster.local' });
  const seen: SeenRequest[] = [];
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', rawHeaders: [...req.rawHeaders] });
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
    });
  };
  const httpApp = http.createServer(onRequest);
  const permissiveApp = http.createServer(onRequest);
  const tcpApp = net.createServer((s) => s.pipe(s));
  for (const s of [httpApp, permissiveApp, tcpApp]) await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const grpcApp = await startOrdersServer();
  const apps: AppPorts = {
    http: (httpApp.address() as net.AddressInfo).port,
    grpc: grpcApp.port,
    tcp: (tcpApp.address() as net.AddressInfo).port,
    permissive: (permissiveApp.address() as net.AddressInfo).port,
  };
  const policy = policyFor(apps);
  const svidDir = join(dir, 'svid');
  const policyDir = join(dir, 'policy');
  const emptyPolicyDir = join(dir, 'no-policy');
  await kubeletWrite(svidDir, await svidFiles(ca, ORDERS_ID));
  await kubeletWrite(policyDir, { 'policy.yaml': policy });
  await kubeletWrite(emptyPolicyDir, {});
  const frontend = (await svidFiles(ca, FRONTEND_ID)) as unknown as Caller;
  const stranger = (await svidFiles(ca, STRANGER_ID)) as unknown as Caller;
  const running = new Set<OrdersSidecar>();

  return {
    ca,
    apps,
    seen,
    grpcSeen: grpcApp.seen,
    policy,
    policyHash: createHash('sha256').update(policy).digest('hex'),
    frontend,
    stranger,
    async start(env = {}, opts = {}) {
      const [admin, outbound, catchAll, lHttp, lGrpc, lTcp, lPermissive] = await freePorts(7);
      const lines: LogLine[] = [];
      const destination = new Writable({
        write(chunk: Buffer, _enc, cb) {
          for (const l of String(chunk).split('\n')) if (l !== '') lines.push(JSON.parse(l) as LogLine);
          cb();
        },
      });
      const config = readSidecarConfig({
        MESHLET_IDENTITY_SOURCE: 'files',
        MESHLET_ADMIN_ADDRESS: '127.0.0.1',
        MESHLET_DRAIN_TIMEOUT: '2s',
        MESHLET_NAMESPACE: 'shop',
        MESHLET_SERVICE_ACCOUNT: 'orders',
        MESHLET_POD_NAME: 'orders-1',
        MESHLET_SVID_DIR: svidDir,
        MESHLET_POLICY_DIR: opts.policy === false ? emptyPolicyDir : policyDir,
        MESHLET_INBOUND_PORTS: `${apps.http}:${lHttp}/http,${apps.grpc}:${lGrpc}/grpc,${apps.tcp}:${lTcp}/tcp,${apps.permissive}:${lPermissive}/http`,
        MESHLET_PERMISSIVE_PORTS: String(apps.permissive),
        MESHLET_INBOUND_CATCHALL_PORT: String(catchAll),
        MESHLET_ADMIN_PORT: String(admin),
        MESHLET_OUTBOUND_PORT: String(outbound),
        ...env,
      });
      // The level the sidecar command would use; the decision lines do not depend on it.
      const logger = createLogger({ name: 'sidecar', level: config.logLevel, base: { pod: config.podName, namespace: config.namespace }, destination });
      const sidecar = new Sidecar(config, { logger });
      await sidecar.start();
      const handle: OrdersSidecar = {
        sidecar,
        lines,
        decisions: () => lines.filter((l) => l.event === 'authz_decision'),
        inbound: { http: lHttp!, grpc: lGrpc!, tcp: lTcp!, permissive: lPermissive! },
        admin: admin!,
        async stop() {
          running.delete(handle);
          await sidecar.stop();
        },
      };
      running.add(handle);
      return handle;
    },
    async close() {
      await Promise.all([...running].map((s) => s.stop()));
      await Promise.all([httpApp, permissiveApp, tcpApp].map((s) => new Promise((r) => s.close(r))));
      httpApp.closeAllConnections();
      permissiveApp.closeAllConnections();
      await stopOrdersServer(grpcApp.server);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface Answer {
  status: number;
  body: string;
}

/** One HTTP/1.1 request over mTLS to `port`, `headers` sent as given (a flat list keeps duplicates and case). */
export function h1(port: number, caller: Caller, path: string, opts: { method?: string; headers?: string[] } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        method: opts.method ?? 'GET',
        path,
        cert: caller['tls.crt'],
        key: caller['tls.key'],
        ca: caller['ca.crt'],
        // X.509-SVIDs name a SPIFFE ID (URI SAN), not a host name.
        checkServerIdentity: () => undefined,
        agent: false,
        headers: ['host', 'orders.shop', ...(opts.headers ?? [])],
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** One plaintext HTTP/1.1 request (a PERMISSIVE port). */
export function plain(port: number, path: string, headers: string[] = []): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, agent: false, headers: ['host', 'orders.shop', ...headers] }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** An HTTP/2 session over mTLS to `port`. */
export function h2(port: number, caller: Caller): http2.ClientHttp2Session {
  return http2.connect(`https://127.0.0.1:${port}`, { cert: caller['tls.crt'], key: caller['tls.key'], ca: caller['ca.crt'], checkServerIdentity: () => undefined });
}

export function h2Get(session: http2.ClientHttp2Session, path: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': 'GET', ':path': path, ':authority': 'orders.shop', ...headers });
    let status = 0;
    let body = '';
    req.setEncoding('utf8');
    req.on('response', (h) => (status = Number(h[':status'])));
    req.on('data', (d: string) => (body += d));
    req.on('end', () => resolve({ status, body }));
    req.on('error', reject);
  });
}

/** A gRPC client straight to the sidecar's grpc listener over mTLS. */
export function grpcClient(port: number, caller: Caller): OrdersClient {
  const creds = grpc.credentials.createSsl(Buffer.from(caller['ca.crt']), Buffer.from(caller['tls.key']), Buffer.from(caller['tls.crt']), { checkServerIdentity: () => undefined });
  return new OrdersClientConstructor(`127.0.0.1:${port}`, creds, { 'grpc.default_authority': 'orders.shop' });
}

/** Opens an mTLS connection to an opaque TCP port, writes `text`, and resolves with what came back before the close (or '' when refused). */
export function tcpEcho(port: number, caller: Caller, text: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, cert: caller['tls.crt'], key: caller['tls.key'], ca: caller['ca.crt'], checkServerIdentity: () => undefined }, () => socket.write(text));
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

/** Waits until `check` is true (lines are written asynchronously by the logger), at most `ms`. */
export async function until(check: () => boolean, ms = 3_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out waiting for a log line');
    await new Promise((r) => setTimeout(r, 10));
  }
}
