import { mkdtemp, rm } from 'node:fs/promises';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createIntermediateCa, createRootCa, issueSvid, type CertificateAuthority } from '../../../src/control-plane/identity-service/ca.ts';
import { createLogger } from '../../../src/common/log/logger.ts';
import { toSpiffeBundle } from '../../../src/data-plane/identity/trust-bundle.ts';
import { readSidecarConfig } from '../../../src/data-plane/sidecar/sidecar-env.ts';
import { Sidecar } from '../../../src/data-plane/sidecar/sidecar.ts';
import { kubeletWrite } from '../../support/kubelet-volume.ts';
import { freePorts } from '../../support/free-port.ts';

/**
 * Meshes with their own CAs for the federation tests: mesh A (`cluster.local`), mesh B
 * (`partner.example`), and strangers (`unknown.example`, `third.example`). Each has a root and
 * an intermediate that signs its SVIDs (the root stays offline, as `meshlet ca init` sets it
 * up); its SPIFFE bundle is what a partner puts in its federation ConfigMap. Sidecars run
 * in-process from a real environment (readSidecarConfig), in front of a real HTTP app on
 * loopback, with their SVID, policy and federation directories laid out as kubelet does.
 */
export interface Mesh {
  readonly trustDomain: string;
  readonly root: CertificateAuthority;
  readonly issuer: CertificateAuthority;
}

export async function mesh(trustDomain: string): Promise<Mesh> {
  const root = await createRootCa({ trustDomain });
  return { trustDomain, root, issuer: await createIntermediateCa(root) };
}

/** The mesh's trust bundle in the SPIFFE bundle format, as its operators publish it. */
export function bundleJson(m: Mesh, sequence?: number): string {
  return JSON.stringify(toSpiffeBundle(m.root.bundlePem, sequence === undefined ? {} : { sequence }));
}

/** The files a `files` source reads (and a caller presents): tls.crt, tls.key, ca.crt. */
export interface SvidFiles {
  'tls.crt': string;
  'tls.key': string;
  'ca.crt': string;
}

export async function svidFiles(m: Mesh, path: string): Promise<SvidFiles> {
  const svid = await issueSvid(m.issuer, { spiffeId: `spiffe://${m.trustDomain}${path}` });
  return { 'tls.crt': svid.certChainPem, 'tls.key': svid.privateKeyPem, 'ca.crt': svid.bundlePem };
}

/**
 * An SVID that claims `claimed`'s trust domain but is signed by `signer`'s CA: what a
 * federated partner's CA could mint to impersonate one of ours (ca.ts never does it on its own).
 */
export async function forgedSvidFiles(signer: Mesh, claimedId: string): Promise<SvidFiles> {
  const trustDomain = new URL(claimedId).host;
  const svid = await issueSvid({ ...signer.issuer, trustDomain }, { spiffeId: claimedId });
  return { 'tls.crt': svid.certChainPem, 'tls.key': svid.privateKeyPem, 'ca.crt': signer.root.bundlePem };
}

export type LogLine = Record<string, unknown>;

/** What the app behind a sidecar saw: path and the caller identity the sidecar vouched for. */
export interface Seen {
  path: string;
  caller: string | null;
}

export interface RunningSidecar {
  readonly sidecar: Sidecar;
  readonly lines: LogLine[];
  readonly inboundPort: number;
  readonly outboundPort: number;
  readonly adminPort: number;
  readonly federationDir: string;
  readonly seen: Seen[];
  /** The value of one series of the sidecar's registry (0 when absent). */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  stop(): Promise<void>;
}

export interface SidecarSpec {
  mesh: Mesh;
  namespace: string;
  serviceAccount: string;
  /** The policy YAML for the app port (APP_PORT is replaced by it). Absent: no policy. */
  policy?: string;
  /** Initial content of the federation directory (key -> file). Absent: the directory is empty. */
  federation?: Record<string, string>;
  /** Identity source env; default: `files` with an SVID issued by the mesh's CA. */
  identityEnv?: Record<string, string>;
  env?: Record<string, string>;
}

/** Runs sidecars and their apps in a temp dir; close() stops all of them and removes it. */
export class FederationLab {
  readonly #cleanups: (() => Promise<void>)[] = [];
  #dir: string | undefined;

  async dir(): Promise<string> {
    if (this.#dir === undefined) {
      this.#dir = await mkdtemp(join(tmpdir(), 'meshlet-federation-'));
      const dir = this.#dir;
      this.#cleanups.push(() => rm(dir, { recursive: true, force: true }));
    }
    return this.#dir;
  }

  async start(spec: SidecarSpec): Promise<RunningSidecar> {
    const base = join(await this.dir(), `${spec.mesh.trustDomain}-${spec.namespace}-${spec.serviceAccount}-${Math.random().toString(36).slice(2, 8)}`);
    const seen: Seen[] = [];
    const app = http.createServer((req, res) => {
      seen.push({ path: req.url ?? '', caller: (req.headers['x-meshlet-peer-identity'] as string | undefined) ?? null });
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('ok');
      });
    });
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    const appPort = (app.address() as AddressInfo).port;
    const [admin, outbound, catchAll, inbound] = await freePorts(4);
    const svidDir = join(base, 'svid');
    const policyDir = join(base, 'policy');
    const federationDir = join(base, 'federation');
    await kubeletWrite(policyDir, spec.policy === undefined ? {} : { 'policy.yaml': spec.policy.replaceAll('APP_PORT', String(appPort)) });
    await kubeletWrite(federationDir, spec.federation ?? {});
    let identityEnv = spec.identityEnv;
    if (identityEnv === undefined) {
      await kubeletWrite(svidDir, { ...(await svidFiles(spec.mesh, `/ns/${spec.namespace}/sa/${spec.serviceAccount}`)) });
      identityEnv = { MESHLET_IDENTITY_SOURCE: 'files', MESHLET_SVID_DIR: svidDir };
    }
    const lines: LogLine[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const l of String(chunk).split('\n')) if (l !== '') lines.push(JSON.parse(l) as LogLine);
        cb();
      },
    });
    const config = readSidecarConfig({
      MESHLET_TRUST_DOMAIN: spec.mesh.trustDomain,
      MESHLET_ADMIN_ADDRESS: '127.0.0.1',
      MESHLET_DRAIN_TIMEOUT: '1s',
      MESHLET_NAMESPACE: spec.namespace,
      MESHLET_SERVICE_ACCOUNT: spec.serviceAccount,
      MESHLET_POLICY_DIR: policyDir,
      MESHLET_INBOUND_PORTS: `${appPort}:${inbound}/http`,
      MESHLET_INBOUND_CATCHALL_PORT: String(catchAll),
      MESHLET_ADMIN_PORT: String(admin),
      MESHLET_OUTBOUND_PORT: String(outbound),
      MESHLET_FEDERATION_BUNDLES: federationDir,
      ...identityEnv,
      ...spec.env,
    });
    const logger = createLogger({ name: 'sidecar', level: 'info', destination });
    const sidecar = new Sidecar(config, { logger });
    const stopApp = async () => {
      app.closeAllConnections();
      await new Promise((r) => app.close(r));
    };
    try {
      await sidecar.start();
    } catch (err) {
      await sidecar.stop();
      await stopApp();
      throw err;
    }
    let stopped = false;
    const stop = async () => {
      if (stopped) return;
      stopped = true;
      await sidecar.stop();
      await stopApp();
    };
    this.#cleanups.push(stop);
    return {
      sidecar,
      lines,
      inboundPort: inbound!,
      outboundPort: outbound!,
      adminPort: admin!,
      federationDir,
      seen,
      metric: (name, labels = {}) => metricValue(sidecar, name, labels),
      stop,
    };
  }

  /** Registers a cleanup to run at close(), before the temp dir goes. */
  defer(cleanup: () => Promise<void>): void {
    this.#cleanups.push(cleanup);
  }

  async close(): Promise<void> {
    for (const cleanup of this.#cleanups.splice(0).reverse()) await cleanup();
    this.#dir = undefined;
  }
}

async function metricValue(sidecar: Sidecar, name: string, labels: Record<string, string>): Promise<number> {
  const metric = sidecar.metrics.registry.getSingleMetric(name);
  if (metric === undefined) return 0;
  const { values } = await metric.get();
  const found = values.find((v) => Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want));
  return found?.value ?? 0;
}

/** Writes the federation directory's content as kubelet would on a ConfigMap update. */
export function writeFederation(s: RunningSidecar, files: Record<string, string>): Promise<void> {
  return kubeletWrite(s.federationDir, files);
}

/** Waits until `check` holds (an update is applied asynchronously), at most `ms`; never asserts on time. */
export async function until(check: () => boolean | Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface Answer {
  status: number;
  body: string;
  /** The sidecar's own error code (x-meshlet-error), when it answered itself. */
  error?: string;
}

/**
 * One HTTP/1.1 request over mTLS straight to a sidecar's inbound listener, on a new connection,
 * presenting `caller`'s SVID. The caller trusts `serverRoots` for the server. Resolves with
 * the answer, or rejects with the connection's error (a refused handshake).
 */
export function callInbound(port: number, caller: SvidFiles, serverRoots: string, path: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path,
        cert: caller['tls.crt'],
        key: caller['tls.key'],
        ca: serverRoots,
        // X.509-SVIDs name a SPIFFE ID (URI SAN), not a host name.
        checkServerIdentity: () => undefined,
        agent: false,
        headers: { host: 'orders.shop' },
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

/** A request the app makes through its sidecar's outbound listener (explicit mode, HTTP_PROXY style). */
export function callOutbound(outboundPort: number, hostPort: string, path: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: outboundPort, path: `http://${hostPort}${path}`, headers: { host: hostPort }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      const error = res.headers['x-meshlet-error'];
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, ...(typeof error === 'string' ? { error } : {}) }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The policy of A's `orders` for these tests: one route per kind of caller a partner may be named by. */
export const ORDERS_POLICY = `apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: orders }
spec:
  servers:
    - name: orders
      selector: { serviceAccount: orders }
      default: deny
      ports:
        - { port: APP_PORT, protocol: http }
      routes:
        - name: partner-api
          path: { prefix: /partner }
          callers:
            - trustDomain: partner.example
        - name: local-only
          path: { prefix: /local }
          callers:
            - trustDomain: cluster.local
        - name: payments
          path: { prefix: /pay }
          callers:
            - spiffeId: spiffe://partner.example/ns/billing/sa/payments
`;
