import { X509Certificate } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer, request as httpRequest, Agent as HttpAgent, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubeletWrite } from '../support/kubelet-volume.ts';
import { freePorts } from '../support/free-port.ts';
import { buildSpire, GaveUp, ManagedProcess, Spire, SPIRE_VERSION, spireSkipReason, until, type X509Material } from './support/spire.ts';

/**
 * Issue 12, suite 5: meshlet's `workload-api` identity source against a real SPIRE (built from
 * source by test/cluster/build/spire.sh). Two real `meshlet sidecar` processes, orders and
 * frontend, each running as its own uid like a pod, get their SVIDs from a real spire-agent
 * (unix workload attestor, entries selected by unix:uid), serve mTLS with them, and keep serving
 * while SPIRE rotates one-minute SVIDs and while the agent restarts.
 */

const TRUST_DOMAIN = 'spire.test';
const ORDERS_ID = `spiffe://${TRUST_DOMAIN}/ns/shop/sa/orders`;
const FRONTEND_ID = `spiffe://${TRUST_DOMAIN}/ns/web/sa/frontend`;
const INTRUDER_ID = `spiffe://${TRUST_DOMAIN}/ns/ops/sa/intruder`;
/** Workload uids (the "pods"); the orders one mirrors the sidecar's uid in an injected pod. */
const UID = { orders: 2020, frontend: 2021, intruder: 2022 } as const;
/** Short enough that SPIRE rotates during the test (at about half-life: ~30 s). */
const X509_SVID_TTL = '60s';
const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));

const skip = spireSkipReason();
if (skip) console.warn(`[test/cluster/spire.test.ts] skipped: ${skip}`);

let spire: Spire;
let root: string;
let app: Server;
let orders: ManagedProcess;
let frontend: ManagedProcess;
let ports: { ordersInbound: number; ordersAdmin: number; frontendOutbound: number; frontendAdmin: number };
let spireBundle: X509Certificate[];
/** What the orders app saw: the caller identity the sidecar put in x-meshlet-peer-identity. */
const seenCallers: string[] = [];

function sidecar(name: string, uid: number, env: Record<string, string>): ManagedProcess {
  return new ManagedProcess(`meshlet sidecar (${name}, uid ${uid})`, process.execPath, [CLI, 'sidecar'], {
    uid,
    gid: uid,
    cwd: root,
    env: {
      PATH: process.env['PATH'] ?? '/usr/bin:/bin',
      HOME: root,
      MESHLET_IDENTITY_SOURCE: 'workload-api',
      SPIFFE_ENDPOINT_SOCKET: `unix://${spire.agentSocket}`,
      MESHLET_TRUST_DOMAIN: TRUST_DOMAIN,
      MESHLET_ADMIN_ADDRESS: '127.0.0.1',
      MESHLET_LOG_LEVEL: 'info',
      MESHLET_DRAIN_TIMEOUT: '2s',
      ...env,
    },
  });
}

async function ready(adminPort: number): Promise<boolean | undefined> {
  const res = await fetch(`http://127.0.0.1:${adminPort}/ready`);
  await res.arrayBuffer();
  return res.status === 200 ? true : undefined;
}

/** One sample of a Prometheus counter/gauge from a sidecar's /metrics. */
async function metric(adminPort: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  if (!line) throw new Error(`no ${name} in /metrics`);
  return Number(line.slice(line.lastIndexOf(' ') + 1));
}

function pemCerts(pem: string): X509Certificate[] {
  return (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((c) => new X509Certificate(c));
}

function uriSan(cert: X509Certificate): string | undefined {
  return /URI:(spiffe:\/\/[^,\s]+)/.exec(cert.subjectAltName ?? '')?.[1];
}

/** True when `leaf` was signed by one of SPIRE's own bundle certificates. */
function issuedBySpire(leaf: X509Certificate): boolean {
  return spireBundle.some((ca) => leaf.checkIssued(ca) && leaf.verify(ca.publicKey));
}

interface Reply {
  status: number;
  body: string;
  /** The certificate the orders sidecar presented (direct mTLS only). */
  served?: X509Certificate;
}

/**
 * A caller holding its own SPIRE SVID (fetched from the agent as the frontend uid) speaking
 * mTLS straight to the orders sidecar, one fresh connection (one full handshake) per request,
 * trusting only SPIRE's bundle and only the orders SPIFFE ID.
 */
function directMtls(svid: X509Material, path: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port: ports.ordersInbound,
        path,
        agent: false,
        cert: svid.certPem,
        key: svid.keyPem,
        ca: svid.bundlePem,
        minVersion: 'TLSv1.3',
        // SPIFFE: the server is authenticated by its URI SAN, not a DNS name.
        checkServerIdentity: (_host, cert) => (cert.subjectaltname === `URI:${ORDERS_ID}` ? undefined : new Error(`server presented ${cert.subjectaltname}, expected URI:${ORDERS_ID}`)),
      },
      (res) => {
        const served = (res.socket as TLSSocket).getPeerX509Certificate();
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, ...(served ? { served } : {}) }));
        res.on('error', reject);
      },
    );
    req.setTimeout(15_000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** The app's plain request to its own sidecar's outbound port (explicit mode), as `frontend` would send it. */
function viaFrontend(agent: HttpAgent, path: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: ports.frontendOutbound, path: `http://orders.shop:80${path}`, headers: { host: 'orders.shop:80' }, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.setTimeout(15_000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** The frontend's SVID for the direct caller, fetched again before it expires. */
class CallerSvid {
  #svid: X509Material | undefined;
  #renewAt = 0;
  fetches = 0;

  async get(): Promise<X509Material> {
    if (!this.#svid || Date.now() >= this.#renewAt) {
      this.#svid = await spire.fetchX509(UID.frontend, UID.frontend);
      this.fetches++;
      const leaf = pemCerts(this.#svid.certPem)[0]!;
      // The agent hands out its cached SVID, which may be just short of its own half-life
      // rotation: renew at three quarters of the life instead, so one fetch lasts a while.
      const from = Date.parse(leaf.validFrom);
      const to = Date.parse(leaf.validTo);
      this.#renewAt = to - (to - from) / 4;
    }
    return this.#svid;
  }
}

const MAX_REQUESTS = 6_000;

async function rotations(): Promise<{ orders: number; frontend: number }> {
  return {
    orders: await metric(ports.ordersAdmin, 'meshlet_identity_rotations_total'),
    frontend: await metric(ports.frontendAdmin, 'meshlet_identity_rotations_total'),
  };
}

/** Whether both sidecars took a new SVID since `before`. */
async function rotatedSince(before: { orders: number; frontend: number }): Promise<boolean> {
  const now = await rotations();
  return now.orders > before.orders && now.frontend > before.frontend;
}

/**
 * A steady, sequential stream of requests from two callers: a direct one holding SPIRE's
 * frontend SVID, making a fresh handshake with the orders sidecar every request (so it sees
 * every certificate orders serves), and the app's requests through the frontend sidecar, which
 * reuse pooled sidecar-to-sidecar connections across rotations. Every failure is recorded.
 */
class Traffic {
  readonly caller = new CallerSvid();
  readonly pooled = new HttpAgent({ keepAlive: true, maxSockets: 2 });
  readonly servedSerials = new Map<string, X509Certificate>();
  readonly failures: string[] = [];
  requests = 0;

  async round(): Promise<void> {
    const svid = await this.caller.get();
    await this.#record(`direct #${this.requests}`, () => directMtls(svid, `/orders/${this.requests}`));
    await this.#record(`via frontend #${this.requests}`, () => viaFrontend(this.pooled, `/orders/${this.requests}`));
  }

  async #record(what: string, send: () => Promise<Reply>): Promise<void> {
    this.requests++;
    try {
      const r = await send();
      if (r.status !== 200) this.failures.push(`${what}: HTTP ${r.status} ${r.body.slice(0, 200)}`);
      else if (JSON.parse(r.body).caller !== FRONTEND_ID) this.failures.push(`${what}: the app saw caller ${r.body}`);
      if (r.served) this.servedSerials.set(r.served.serialNumber, r.served);
    } catch (err) {
      this.failures.push(`${what}: ${(err as Error).message}`);
    }
  }

  close(): void {
    this.pooled.destroy();
  }
}

function context(): string {
  return [spire?.logs(), orders?.tail(), frontend?.tail()].filter(Boolean).join('\n');
}

describe.skipIf(skip !== undefined)(`a meshlet sidecar with the workload-api source, against a real SPIRE ${SPIRE_VERSION}${skip ? ` (skipped: ${skip})` : ''}`, () => {
  beforeAll(async () => {
    const built = await buildSpire();
    console.log(`[spire] spire.sh: ${built.seconds.toFixed(1)} s (cached binaries reuse is a no-op)`);
    spire = await Spire.start({ binaries: built, trustDomain: TRUST_DOMAIN, x509SvidTtl: X509_SVID_TTL, caTtl: '2h' });
    console.log(`[spire] ${SPIRE_VERSION}: spire-server healthy after ${spire.startMs.server} ms, spire-agent (join token attested) after ${spire.startMs.agent} ms`);
    spireBundle = pemCerts(await spire.bundlePem());

    await spire.createEntry(ORDERS_ID, UID.orders);
    await spire.createEntry(FRONTEND_ID, UID.frontend);
    await spire.createEntry(INTRUDER_ID, UID.intruder);

    root = await mkdtemp(join(tmpdir(), 'meshlet-spire-mesh-'));
    await chmod(root, 0o755);
    app = createServer((req, res) => {
      const caller = String(req.headers['x-meshlet-peer-identity'] ?? '-');
      seenCallers.push(caller);
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ path: req.url, caller }));
      });
    });
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    const appPort = (app.address() as AddressInfo).port;
    const [ordersInbound, ordersAdmin, ordersOutbound, ordersCatchAll, frontendOutbound, frontendAdmin, frontendCatchAll] = await freePorts(7);
    ports = { ordersInbound: ordersInbound!, ordersAdmin: ordersAdmin!, frontendOutbound: frontendOutbound!, frontendAdmin: frontendAdmin! };

    const ordersPolicy = join(root, 'orders-policy');
    const frontendPolicy = join(root, 'frontend-policy');
    await mkdir(ordersPolicy);
    await mkdir(frontendPolicy);
    await kubeletWrite(
      ordersPolicy,
      {
        'policy.yaml': `apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: orders }
spec:
  servers:
    - name: orders
      selector: { serviceAccount: orders }
      ports:
        - { port: ${appPort}, protocol: http }
      routes:
        - name: list-orders
          methods: [GET]
          path: { prefix: /orders }
          callers:
            - spiffeId: ${FRONTEND_ID}
`,
      },
    );
    await kubeletWrite(frontendPolicy, {});

    orders = sidecar('orders', UID.orders, {
      MESHLET_NAMESPACE: 'shop',
      MESHLET_SERVICE_ACCOUNT: 'orders',
      MESHLET_POLICY_DIR: ordersPolicy,
      MESHLET_INBOUND_PORTS: `${appPort}:${ordersInbound}/http`,
      MESHLET_INBOUND_CATCHALL_PORT: String(ordersCatchAll),
      MESHLET_ADMIN_PORT: String(ordersAdmin),
      MESHLET_OUTBOUND_PORT: String(ordersOutbound),
    });
    frontend = sidecar('frontend', UID.frontend, {
      MESHLET_NAMESPACE: 'web',
      MESHLET_SERVICE_ACCOUNT: 'frontend',
      MESHLET_POLICY_DIR: frontendPolicy,
      MESHLET_INBOUND_CATCHALL_PORT: String(frontendCatchAll),
      MESHLET_ADMIN_PORT: String(frontendAdmin),
      MESHLET_OUTBOUND_PORT: String(frontendOutbound),
      MESHLET_DESTINATION_ADDRESSES: `orders.shop:80=127.0.0.1:${ordersInbound}`,
      MESHLET_DESTINATION_IDENTITIES: `orders.shop:80=${ORDERS_ID}`,
    });
  }, 45 * 60_000);

  afterAll(async () => {
    await Promise.all([orders?.stop(), frontend?.stop()]);
    if (app) {
      app.closeAllConnections();
      await new Promise((r) => app.close(r));
    }
    await spire?.close();
    if (root) await rm(root, { recursive: true, force: true });
  }, 60_000);

  it('both sidecars get their SVID and bundle from the real agent and become ready', async () => {
    for (const [p, port] of [[orders, ports.ordersAdmin], [frontend, ports.frontendAdmin]] as const) {
      await until(`${p.name} /ready 200`, async () => {
        if (!p.running()) throw new GaveUp(`${p.name} exited ${p.child.exitCode}`);
        return ready(port);
      }, 90_000, context);
      expect(p.output()).toContain('meshlet sidecar: ready');
    }
    const info = await (await fetch(`http://127.0.0.1:${ports.ordersAdmin}/metrics`)).text();
    expect(info).toContain(`meshlet_identity_info{spiffe_id="${ORDERS_ID}",source="workload-api"} 1`);
    const frontendInfo = await (await fetch(`http://127.0.0.1:${ports.frontendAdmin}/metrics`)).text();
    expect(frontendInfo).toContain(`meshlet_identity_info{spiffe_id="${FRONTEND_ID}",source="workload-api"} 1`);
  }, 120_000);

  it('serves mTLS with the SVID SPIRE issued: a caller with another SPIRE SVID gets 200 and the app sees its SPIFFE ID', async () => {
    const caller = await spire.fetchX509(UID.frontend, UID.frontend);
    expect(caller.spiffeId).toBe(FRONTEND_ID);
    const reply = await directMtls(caller, '/orders/1');
    expect(reply.status, reply.body).toBe(200);
    expect(JSON.parse(reply.body)).toEqual({ path: '/orders/1', caller: FRONTEND_ID });

    // The certificate presented is SPIRE's: the orders SPIFFE ID, signed by SPIRE's CA as the
    // server's own bundle has it, and not a CA itself.
    const served = reply.served!;
    expect(uriSan(served)).toBe(ORDERS_ID);
    expect(served.ca).toBe(false);
    expect(issuedBySpire(served)).toBe(true);
    expect(pemCerts(caller.bundlePem).map((c) => c.fingerprint256)).toEqual(spireBundle.map((c) => c.fingerprint256));

    // And sidecar to sidecar: both ends hold SPIRE SVIDs.
    const agent = new HttpAgent({ keepAlive: true });
    try {
      const meshed = await viaFrontend(agent, '/orders/2');
      expect(meshed.status, meshed.body).toBe(200);
      expect(JSON.parse(meshed.body)).toEqual({ path: '/orders/2', caller: FRONTEND_ID });
    } finally {
      agent.destroy();
    }
  }, 120_000);

  it('refuses a caller whose SPIRE identity the policy does not allow (403, the app never sees it)', async () => {
    const intruder = await spire.fetchX509(UID.intruder, UID.intruder);
    expect(intruder.spiffeId).toBe(INTRUDER_ID);
    const before = seenCallers.length;
    const reply = await directMtls(intruder, '/orders/1');
    expect(reply.status).toBe(403);
    expect(seenCallers.slice(before)).not.toContain(INTRUDER_ID);
  }, 120_000);

  it('keeps serving with zero failed requests while SPIRE rotates the short-lived SVIDs', async () => {
    const traffic = new Traffic();
    const before = await rotations();
    // Bounded: stop once both sidecars rotated and orders served a second certificate (then a
    // tail of requests on the new SVIDs), or after MAX_REQUESTS — 60 s SVIDs rotate after ~30 s.
    let tail = -1;
    try {
      while (traffic.requests < MAX_REQUESTS && tail !== 0) {
        await traffic.round();
        if (tail > 0) tail--;
        else if (traffic.requests % 10 === 0 && traffic.servedSerials.size >= 2 && (await rotatedSince(before))) tail = 20;
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      traffic.close();
    }

    expect(traffic.failures, `${traffic.failures.length} of ${traffic.requests} requests failed`).toEqual([]);
    expect(tail, `no rotation seen within ${traffic.requests} requests (served serials: ${[...traffic.servedSerials.keys()].join(', ')})\n${context()}`).toBe(0);
    // Every certificate orders served was SPIRE's, for orders, each one different.
    expect(traffic.servedSerials.size).toBeGreaterThanOrEqual(2);
    for (const cert of traffic.servedSerials.values()) {
      expect(uriSan(cert)).toBe(ORDERS_ID);
      expect(issuedBySpire(cert)).toBe(true);
    }
    expect(new Set([...traffic.servedSerials.values()].map((c) => c.validFrom)).size).toBeGreaterThanOrEqual(2);
    // The agent's stream never sent meshlet anything it had to reject.
    expect(await metric(ports.ordersAdmin, 'meshlet_identity_rotation_failures_total')).toBe(0);
    expect(await metric(ports.frontendAdmin, 'meshlet_identity_rotation_failures_total')).toBe(0);
    console.log(`[spire] rotation: ${traffic.requests} requests, 0 failed; orders served ${traffic.servedSerials.size} certificates; caller SVID fetched ${traffic.caller.fetches} times`);
  }, 10 * 60_000);

  it('keeps serving while the agent restarts, then takes the SVIDs the restarted agent hands out', async () => {
    const traffic = new Traffic();
    await traffic.caller.get();
    const before = await rotations();
    let restartMs = 0;
    try {
      // The agent goes away (its socket with it): the sidecars' streams fail, they retry with
      // backoff and keep serving with the SVIDs they hold.
      restartMs = await spire.restartAgent(async () => {
        for (let i = 0; i < 20; i++) await traffic.round();
      });
      // A new SVID can only reach a sidecar through a reopened stream to the restarted agent.
      while (traffic.requests < MAX_REQUESTS && !(traffic.requests % 10 === 0 && (await rotatedSince(before)))) {
        await traffic.round();
        await new Promise((r) => setTimeout(r, 50));
      }
      for (let i = 0; i < 20; i++) await traffic.round();
    } finally {
      traffic.close();
    }

    expect(traffic.failures, `${traffic.failures.length} of ${traffic.requests} requests failed`).toEqual([]);
    expect(await rotatedSince(before), `the sidecars got no SVID from the restarted agent\n${context()}`).toBe(true);
    // …and the stream the agent dropped was reported and reopened, not silently lost.
    const dropped = orders.output().split('\n').filter((l) => l.includes('WORKLOAD_API_STREAM_FAILED') && /UNAVAILABLE|ended the FetchX509SVID stream/.test(l));
    expect(dropped.length, orders.tail()).toBeGreaterThan(0);
    console.log(`[spire] agent restart: healthy again after ${restartMs} ms; ${traffic.requests} requests, 0 failed`);
  }, 10 * 60_000);
});
