import { createServer, type Server } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer } from 'node:net';
import { readSidecarConfig } from '../../../src/data-plane/sidecar/sidecar-env.ts';
import { createRootCa, issueSvid, type CertificateAuthority } from '../../../src/control-plane/identity-service/ca.ts';
import type { Logger } from '../../../src/common/log/logger.ts';
import { Sidecar } from '../../../src/data-plane/sidecar/sidecar.ts';
import { kubeletWrite } from '../../support/kubelet-volume.ts';
import { freePorts } from '../../support/free-port.ts';

/**
 * Two "pods" on loopback in explicit mode: frontend (client side) and orders (server side),
 * each with a mounted-volume directory for its SVID (files source) and its policy, as
 * kubelet would lay them out. The sidecars themselves are started by the tests, in-process
 * or as real `meshlet sidecar` processes, from the env this returns.
 */
export const ORDERS_ID = 'spiffe://cluster.local/ns/shop/sa/orders';
export const FRONTEND_ID = 'spiffe://cluster.local/ns/web/sa/frontend';

export const ORDERS_POLICY = `apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: orders }
spec:
  servers:
    - name: orders
      selector: { serviceAccount: orders }
      ports:
        - { port: APP_PORT, protocol: http }
        - { port: TCP_PORT, protocol: tcp }
      routes:
        - name: ledger-stream
          port: TCP_PORT
          callers:
            - spiffeId: ${FRONTEND_ID}
        - name: list-orders
          methods: [GET]
          path: { prefix: /orders }
          callers:
            - spiffeId: ${FRONTEND_ID}
        - name: admin
          path: { prefix: /admin }
          callers:
            - spiffeId: spiffe://cluster.local/ns/ops/sa/operator
`;

/** The orders policy with the app's real ports filled in. */
export function ordersPolicy(appPort: number, tcpPort: number): string {
  return ORDERS_POLICY.replaceAll('APP_PORT', String(appPort)).replaceAll('TCP_PORT', String(tcpPort));
}

export interface MeshOfTwo {
  ca: CertificateAuthority;
  dir: string;
  app: Server;
  appPort: number;
  /** An opaque TCP echo app of orders, and the frontend's local port mapped to it. */
  tcpApp: NetServer;
  tcpAppPort: number;
  frontendTcpPort: number;
  /** Requests the orders app saw (method + url). */
  seen: string[];
  ordersEnv: Record<string, string>;
  frontendEnv: Record<string, string>;
  ordersPolicyDir: string;
  ordersSvidDir: string;
  ports: { ordersAdmin: number; ordersInbound: number; ordersOutbound: number; ordersCatchAll: number; frontendAdmin: number; frontendOutbound: number };
  close(): Promise<void>;
}

export async function svidFiles(ca: CertificateAuthority, spiffeId: string, ttlMs?: number): Promise<Record<string, string>> {
  const svid = await issueSvid(ca, { spiffeId, ...(ttlMs ? { ttlMs } : {}) });
  return { 'tls.crt': svid.certChainPem, 'tls.key': svid.privateKeyPem, 'ca.crt': svid.bundlePem };
}

export async function meshOfTwo(): Promise<MeshOfTwo> {
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-sidecar-'));
  const ca = await createRootCa({ trustDomain: 'cluster.local' });
  const seen: string[] = [];
  const app = createServer((req, res) => {
    seen.push(`${req.method} ${req.url} ${req.headers['x-meshlet-peer-identity'] ?? '-'}`);
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ path: req.url, caller: req.headers['x-meshlet-peer-identity'] ?? null }));
    });
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  const appPort = (app.address() as AddressInfo).port;

  const tcpApp = createNetServer((socket) => socket.pipe(socket));
  await new Promise<void>((r) => tcpApp.listen(0, '127.0.0.1', r));
  const tcpAppPort = (tcpApp.address() as AddressInfo).port;
  const [ordersAdmin, ordersInbound, ordersOutbound, frontendAdmin, frontendOutbound, ordersCatchAll, frontendCatchAll, ordersTcp, frontendTcpPort] = await freePorts(9);
  const ordersSvidDir = join(dir, 'orders-svid');
  const ordersPolicyDir = join(dir, 'orders-policy');
  const frontendSvidDir = join(dir, 'frontend-svid');
  const frontendPolicyDir = join(dir, 'frontend-policy');
  await kubeletWrite(ordersSvidDir, await svidFiles(ca, ORDERS_ID));
  await kubeletWrite(frontendSvidDir, await svidFiles(ca, FRONTEND_ID));
  await kubeletWrite(ordersPolicyDir, { 'policy.yaml': ordersPolicy(appPort, tcpAppPort) });
  await kubeletWrite(frontendPolicyDir, {});

  const common = { MESHLET_IDENTITY_SOURCE: 'files', MESHLET_ADMIN_ADDRESS: '127.0.0.1', MESHLET_LOG_LEVEL: 'warn', MESHLET_DRAIN_TIMEOUT: '5s' };
  const ordersEnv = {
    ...common,
    MESHLET_NAMESPACE: 'shop',
    MESHLET_SERVICE_ACCOUNT: 'orders',
    MESHLET_SVID_DIR: ordersSvidDir,
    MESHLET_POLICY_DIR: ordersPolicyDir,
    MESHLET_INBOUND_PORTS: `${appPort}:${ordersInbound}/http,${tcpAppPort}:${ordersTcp}/tcp`,
    MESHLET_INBOUND_CATCHALL_PORT: String(ordersCatchAll),
    MESHLET_ADMIN_PORT: String(ordersAdmin),
    MESHLET_OUTBOUND_PORT: String(ordersOutbound),
  };
  const frontendEnv = {
    ...common,
    MESHLET_NAMESPACE: 'web',
    MESHLET_SERVICE_ACCOUNT: 'frontend',
    MESHLET_SVID_DIR: frontendSvidDir,
    MESHLET_POLICY_DIR: frontendPolicyDir,
    MESHLET_INBOUND_CATCHALL_PORT: String(frontendCatchAll),
    MESHLET_ADMIN_PORT: String(frontendAdmin),
    MESHLET_OUTBOUND_PORT: String(frontendOutbound),
    MESHLET_DESTINATION_ADDRESSES: `orders.shop:80=127.0.0.1:${ordersInbound}`,
    MESHLET_DESTINATION_IDENTITIES: `orders.shop:80=${ORDERS_ID}`,
    MESHLET_OUTBOUND_TCP: `${frontendTcpPort}=127.0.0.1:${ordersTcp}@${ORDERS_ID}`,
  };
  return {
    ca,
    dir,
    app,
    appPort,
    tcpApp,
    tcpAppPort,
    frontendTcpPort: frontendTcpPort!,
    seen,
    ordersEnv,
    frontendEnv,
    ordersPolicyDir,
    ordersSvidDir,
    ports: { ordersAdmin: ordersAdmin!, ordersInbound: ordersInbound!, ordersOutbound: ordersOutbound!, ordersCatchAll: ordersCatchAll!, frontendAdmin: frontendAdmin!, frontendOutbound: frontendOutbound! },
    async close() {
      await new Promise((r) => app.close(r));
      await new Promise((r) => tcpApp.close(r));
      app.closeAllConnections();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Both pods' sidecars, in-process, configured from the mesh's env and sharing `logger`, started.
 * If either fails to start, both are stopped before the error is rethrown.
 */
export async function startSidecars(mesh: MeshOfTwo, logger: Logger): Promise<{ orders: Sidecar; frontend: Sidecar }> {
  const orders = new Sidecar(readSidecarConfig(mesh.ordersEnv), { logger });
  const frontend = new Sidecar(readSidecarConfig(mesh.frontendEnv), { logger });
  try {
    await Promise.all([orders.start(), frontend.start()]);
  } catch (err) {
    await Promise.allSettled([orders.stop(), frontend.stop()]);
    throw err;
  }
  return { orders, frontend };
}
