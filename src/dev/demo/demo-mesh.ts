import { createServer, request, type Server } from 'node:http';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { readSidecarConfig } from '../../data-plane/sidecar/sidecar-env.ts';
import { createRootCa, issueSvid, type CertificateAuthority } from '../../control-plane/identity-service/ca.ts';
import { createLogger } from '../../common/log/logger.ts';
import { Sidecar } from '../../data-plane/sidecar/sidecar.ts';
import { freePorts } from './free-ports.ts';
import { demoResult } from './call-result.ts';

/**
 * The demo mesh `npm start` runs: a CA, three services (frontend, orders, payments) each
 * with its own in-process sidecar on loopback in explicit mode, one policy file the user can
 * edit live, and a little traffic whose every decision is printed with its reason.
 *
 *   frontend --GET /orders------------> orders     allowed (route list-orders)
 *   frontend --DELETE /orders/7-------> orders     denied  (no route grants it)
 *   orders   --POST /charge-----------> payments   allowed (route charge)
 *   frontend --POST /charge-----------> payments   denied  (only orders may charge)
 */
export const DEMO_TRUST_DOMAIN = 'demo.local';
export const DEMO_APP_PORT = 8080;

/** The demo's three services, the same on loopback and in pods. */
export const DEMO_SERVICES = [
  { name: 'frontend', namespace: 'web', serviceAccount: 'frontend' },
  { name: 'orders', namespace: 'shop', serviceAccount: 'orders' },
  { name: 'payments', namespace: 'shop', serviceAccount: 'payments' },
] as const;

interface DemoService {
  name: string;
  namespace: string;
  serviceAccount: string;
  spiffeId: string;
  app: Server;
  appPort: number;
  sidecar: Sidecar;
  ports: { admin: number; outbound: number; inbound: number };
}

export interface DemoCall {
  from: string;
  to: string;
  method: string;
  path: string;
}

export interface DemoResult extends DemoCall {
  status: number;
  decision: 'allow' | 'deny' | 'error';
  /** For a denial: the route and reason from the 403 body; for an allow: who the app saw calling. */
  detail: string;
}

export const DEMO_CALLS: readonly DemoCall[] = [
  { from: 'frontend', to: 'orders', method: 'GET', path: '/orders' },
  { from: 'frontend', to: 'orders', method: 'DELETE', path: '/orders/7' },
  { from: 'orders', to: 'payments', method: 'POST', path: '/charge' },
  { from: 'frontend', to: 'payments', method: 'POST', path: '/charge' },
];

export function demoPolicy(td = DEMO_TRUST_DOMAIN): string {
  return `# meshlet demo policy — edit me while the demo runs: the sidecars reload it live.
# Try: add DELETE to list-orders' methods, or allow frontend on charge, then watch the next round.
apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: demo }
spec:
  servers:
    - name: orders
      selector: { serviceAccount: orders }
      ports:
        - { port: 8080, protocol: http }
      routes:
        - name: list-orders
          methods: [GET]
          path: { prefix: /orders }
          callers:
            - spiffeId: spiffe://${td}/ns/web/sa/frontend
    - name: payments
      selector: { serviceAccount: payments }
      ports:
        - { port: 8080, protocol: http }
      routes:
        - name: charge
          methods: [POST]
          path: { exact: /charge }
          callers:
            - spiffeId: spiffe://${td}/ns/shop/sa/orders
`;
}

/** An app that answers every request with what it saw: the proof of who called through the mesh. */
function echoApp(name: string): Server {
  return createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const body = JSON.stringify({ service: name, method: req.method, path: req.url, caller: req.headers['x-meshlet-peer-identity'] ?? null });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
}

export interface DemoMeshOptions {
  /** Where the CA, SVIDs and policy go; default a new temp dir, removed on stop. */
  dir?: string;
  /** Sidecar log lines (JSON) go here; default: dropped (the demo prints its own view). */
  logStream?: Writable;
}

export class DemoMesh {
  readonly services = new Map<string, DemoService>();
  dir = '';
  policyFile = '';
  #ownDir = false;
  #ca: CertificateAuthority | undefined;

  async start(opts: DemoMeshOptions = {}): Promise<void> {
    this.#ownDir = opts.dir === undefined;
    this.dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'meshlet-demo-')));
    const ca = (this.#ca = await createRootCa({ trustDomain: DEMO_TRUST_DOMAIN }));
    const policyDir = join(this.dir, 'policy');
    await mkdir(policyDir, { recursive: true });
    this.policyFile = join(policyDir, 'policy.yaml');
    await writeFile(this.policyFile, demoPolicy());
    const logger = createLogger({ name: 'sidecar', level: 'info', destination: opts.logStream ?? new Writable({ write: (_c, _e, cb) => cb() }) });

    const specs = DEMO_SERVICES;
    const ports = await freePorts(specs.length * 4);
    const inboundOf = (i: number) => ports[i * 4 + 2]!;
    // Every service may call every other by name (explicit mode: MESHLET_DESTINATION_ADDRESSES
    // maps `<name>:8080` to that service's inbound listener), expecting that service's identity.
    const addresses = specs.map((s, i) => `${s.name}:8080=127.0.0.1:${inboundOf(i)}`).join(',');
    const identities = specs.map((s) => `${s.name}:8080=spiffe://${DEMO_TRUST_DOMAIN}/ns/${s.namespace}/sa/${s.serviceAccount}`).join(',');

    for (const [i, s] of specs.entries()) {
      // Each app listens on port 8080 of its own loopback address (127.0.0.2, .3, .4), as
      // each pod has its own IP: the policy's `port: 8080` reads as it would in a cluster.
      const appAddress = `127.0.0.${i + 2}`;
      const app = echoApp(s.name);
      await new Promise<void>((resolve, reject) => {
        app.once('error', (err) => reject(new Error(`demo: ${s.name}'s app cannot listen on ${appAddress}:${DEMO_APP_PORT}: ${err.message}`)));
        app.listen(DEMO_APP_PORT, appAddress, () => resolve());
      });
      const appPort = (app.address() as AddressInfo).port;
      const svidDir = join(this.dir, s.name, 'svid');
      await mkdir(svidDir, { recursive: true });
      const spiffeId = `spiffe://${DEMO_TRUST_DOMAIN}/ns/${s.namespace}/sa/${s.serviceAccount}`;
      const svid = await issueSvid(ca, { spiffeId });
      await writeFile(join(svidDir, 'tls.crt'), svid.certChainPem);
      await writeFile(join(svidDir, 'tls.key'), svid.privateKeyPem, { mode: 0o600 });
      await writeFile(join(svidDir, 'ca.crt'), svid.bundlePem);
      const [admin, outbound, inbound, catchAll] = [ports[i * 4]!, ports[i * 4 + 1]!, inboundOf(i), ports[i * 4 + 3]!];
      const config = readSidecarConfig({
        MESHLET_TRUST_DOMAIN: DEMO_TRUST_DOMAIN,
        MESHLET_NAMESPACE: s.namespace,
        MESHLET_SERVICE_ACCOUNT: s.serviceAccount,
        MESHLET_POD_NAME: `${s.name}-0`,
        MESHLET_IDENTITY_SOURCE: 'files',
        MESHLET_SVID_DIR: svidDir,
        MESHLET_POLICY_DIR: policyDir,
        MESHLET_INBOUND_PORTS: `${DEMO_APP_PORT}:${inbound}/http`,
        MESHLET_APP_ADDRESS: appAddress,
        MESHLET_INBOUND_CATCHALL_PORT: String(catchAll),
        MESHLET_ADMIN_PORT: String(admin),
        MESHLET_ADMIN_ADDRESS: '127.0.0.1',
        MESHLET_OUTBOUND_PORT: String(outbound),
        MESHLET_DESTINATION_ADDRESSES: addresses,
        MESHLET_DESTINATION_IDENTITIES: identities,
        MESHLET_DRAIN_TIMEOUT: '2s',
      });
      const sidecar = new Sidecar(config, { logger: logger.child({ service: s.name }) });
      this.services.set(s.name, { ...s, spiffeId, app, appPort, sidecar, ports: { admin, outbound, inbound } });
    }
    await Promise.all([...this.services.values()].map((s) => s.sidecar.start()));
  }

  /** One call from `from`'s app through its sidecar to `to`, as the app would make it (HTTP_PROXY style). */
  call(c: DemoCall): Promise<DemoResult> {
    const from = this.services.get(c.from)!;
    return new Promise((resolve) => {
      const req = request(
        { host: '127.0.0.1', port: from.ports.outbound, method: c.method, path: `http://${c.to}:8080${c.path}`, headers: { host: `${c.to}:8080`, 'content-length': '0' } },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d) => (text += d));
          res.on('end', () => resolve(demoResult(c, res.statusCode ?? 0, text)));
        },
      );
      req.on('error', (err) => resolve({ ...c, status: 0, decision: 'error', detail: err.message }));
      req.end();
    });
  }

  async round(): Promise<DemoResult[]> {
    const out: DemoResult[] = [];
    for (const c of DEMO_CALLS) out.push(await this.call(c));
    return out;
  }

  async stop(): Promise<void> {
    await Promise.all([...this.services.values()].map((s) => s.sidecar.stop('demo stopped')));
    await Promise.all(
      [...this.services.values()].map(
        (s) =>
          new Promise<void>((r) => {
            s.app.close(() => r());
            s.app.closeAllConnections();
          }),
      ),
    );
    if (this.#ownDir && this.dir) await rm(this.dir, { recursive: true, force: true });
  }

  get ca(): CertificateAuthority | undefined {
    return this.#ca;
  }
}
