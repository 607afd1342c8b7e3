import * as http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import type * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as tls from 'node:tls';
import { createRootCa, issueSvid, type CertificateAuthority } from '../../../../src/control-plane/identity-service/ca.ts';
import { parseExposition } from '../../../../src/cli/scrape/parse-exposition.ts';
import { kubeletWrite } from '../../../support/kubelet-volume.ts';
import { freePorts } from '../../../support/free-port.ts';
import { FRONTEND_ID, ORDERS_ID, svidFiles } from '../../sidecar/mesh-of-two.ts';
import { startSidecarProcess, type SidecarProcess } from '../sidecar-process.ts';

/**
 * One real `meshlet sidecar` process (the "orders" pod) in front of a counting app, for the
 * overload attacks of issue 11 (items 5 and 6). Two callers are allowed on every path by the
 * policy ConfigMap — the attacker and a second, innocent caller — and each gets its own SVID
 * from the same CA to dial the sidecar's inbound port directly with mTLS, exactly as their
 * sidecars would.
 */
export { ORDERS_ID };
export const ATTACKER_ID = 'spiffe://cluster.local/ns/web/sa/scraper';
/** The innocent caller is the frontend of mesh-of-two.ts. */
export const VICTIM_ID = FRONTEND_ID;

/**
 * The app, counting what reaches it: TCP connections, request heads, and the requests it is
 * still working on. `/stream` reads its body for ever and never answers; `/hold` is answered
 * only when the test calls `release()`; anything else is answered 200 once its body ended.
 */
export class CountingApp {
  readonly server: http.Server;
  connections = 0;
  requests = 0;
  /** Requests whose head arrived and whose exchange is not over (the app is busy with them). */
  open = 0;
  readonly held: http.ServerResponse[] = [];
  readonly paths: string[] = [];

  constructor() {
    this.server = http.createServer((req, res) => {
      this.requests++;
      this.open++;
      this.paths.push(req.url ?? '');
      res.once('close', () => this.open--);
      if (req.url === '/stream') {
        req.resume();
        return;
      }
      if (req.url === '/hold') {
        req.resume();
        this.held.push(res);
        return;
      }
      req.resume();
      req.on('end', () => res.writeHead(200, { 'content-type': 'text/plain' }).end('ok'));
    });
    // A pooled connection must not be closed by the app under a test (node's default is 5 s).
    this.server.keepAliveTimeout = 120_000;
    this.server.on('connection', (socket: net.Socket) => {
      this.connections++;
      socket.on('error', () => {});
    });
  }

  /** Answers every held request (200, a short body). */
  release(): void {
    for (const res of this.held.splice(0)) if (!res.destroyed) res.writeHead(200, { 'content-type': 'text/plain' }).end('late');
  }
}

export interface OverloadMesh {
  app: CountingApp;
  appPort: number;
  sidecar: SidecarProcess;
  /** The sidecar's inbound (mTLS) port in front of the app. */
  inboundPort: number;
  adminPort: number;
  /** Client TLS options carrying a caller's SVID, for the inbound port. */
  callerTls(who: 'attacker' | 'victim'): tls.ConnectionOptions;
  /** meshlet_proxy_refusals_total{direction="inbound", code} from the sidecar's /metrics. */
  refusals(code: string): Promise<number>;
  close(): Promise<void>;
}

function policy(appPort: number): string {
  return `apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: orders }
spec:
  servers:
    - name: orders
      selector: { serviceAccount: orders }
      ports:
        - { port: ${appPort}, protocol: http }
      routes:
        - name: everything
          path: { prefix: / }
          callers:
            - spiffeId: ${ATTACKER_ID}
            - spiffeId: ${VICTIM_ID}
`;
}

/** Starts the app and the sidecar process with `env` added to the pod's configuration. */
export async function startOverloadMesh(env: Record<string, string>): Promise<OverloadMesh> {
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-overload-'));
  const ca: CertificateAuthority = await createRootCa({ trustDomain: 'cluster.local' });
  const app = new CountingApp();
  const appPort = await new Promise<number>((resolve) => app.server.listen(0, '127.0.0.1', () => resolve((app.server.address() as net.AddressInfo).port)));
  const [inboundPort, adminPort, outboundPort, catchAllPort] = (await freePorts(4)) as [number, number, number, number];
  const svidDir = join(dir, 'svid');
  const policyDir = join(dir, 'policy');
  await kubeletWrite(svidDir, await svidFiles(ca, ORDERS_ID));
  await kubeletWrite(policyDir, { 'policy.yaml': policy(appPort) });
  const callers = {
    attacker: await issueSvid(ca, { spiffeId: ATTACKER_ID }),
    victim: await issueSvid(ca, { spiffeId: VICTIM_ID }),
  };
  const sidecar = await startSidecarProcess({
    MESHLET_NAMESPACE: 'shop',
    MESHLET_SERVICE_ACCOUNT: 'orders',
    MESHLET_IDENTITY_SOURCE: 'files',
    MESHLET_SVID_DIR: svidDir,
    MESHLET_POLICY_DIR: policyDir,
    MESHLET_INBOUND_PORTS: `${appPort}:${inboundPort}/http`,
    MESHLET_INBOUND_CATCHALL_PORT: String(catchAllPort),
    MESHLET_ADMIN_PORT: String(adminPort),
    MESHLET_ADMIN_ADDRESS: '127.0.0.1',
    MESHLET_OUTBOUND_PORT: String(outboundPort),
    MESHLET_LOG_LEVEL: 'warn',
    MESHLET_DRAIN_TIMEOUT: '2s',
    ...env,
  });
  return {
    app,
    appPort,
    sidecar,
    inboundPort,
    adminPort,
    callerTls(who) {
      const svid = callers[who];
      return {
        cert: svid.certChainPem,
        key: svid.privateKeyPem,
        ca: svid.bundlePem,
        minVersion: 'TLSv1.3',
        // The server proves a SPIFFE ID (URI SAN), not a host name.
        checkServerIdentity: () => undefined,
      };
    },
    async refusals(code) {
      const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
      const sample = parseExposition(text).samples.find((s) => s.name === 'meshlet_proxy_refusals_total' && s.labels.direction === 'inbound' && s.labels.code === code);
      return sample?.value ?? 0;
    },
    async close() {
      await sidecar.stop();
      app.release();
      app.server.closeAllConnections();
      await new Promise((r) => app.server.close(r));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Polls `cond` until true; fails with `what` after a generous deadline (not a timing assertion). */
export async function until(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
