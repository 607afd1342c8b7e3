import { createHash } from 'node:crypto';
import * as http2 from 'node:http2';
import { request } from 'node:http';
import { connect } from 'node:net';
import { readSidecarConfig } from '../../../src/data-plane/sidecar/sidecar-env.ts';
import { createLogger } from '../../../src/common/log/logger.ts';
import { parseExposition, type Sample } from '../../../src/cli/scrape/parse-exposition.ts';
import { Sidecar } from '../../../src/data-plane/sidecar/sidecar.ts';
import { kubeletWrite } from '../../support/kubelet-volume.ts';
import { meshOfTwo, type MeshOfTwo } from '../sidecar/mesh-of-two.ts';

/** Another identity than orders': a destination that expects it gets orders' sidecar, which must be refused. */
export const NOT_ORDERS_ID = 'spiffe://cluster.local/ns/shop/sa/not-orders';

/**
 * The real thing for metric tests: two assembled sidecars (frontend -> orders, test/integration/
 * sidecar/mesh-of-two.ts), configured by environment only, on loopback. Frontend's outbound also
 * knows `imposter.shop:80` (orders' sidecar, expected to be NOT_ORDERS_ID: every handshake is
 * refused) and `127.0.0.1:<orders' app port>` as a plaintext destination.
 */
export interface TwoSidecars {
  mesh: MeshOfTwo;
  orders: Sidecar;
  frontend: Sidecar;
  /** Replaces orders' policy as kubelet would and waits until the sidecar applied it. */
  setOrdersPolicy(yaml: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startTwoSidecars(opts: { ordersPolicy?: (appPort: number, tcpPort: number) => string; ordersEnv?: Record<string, string> } = {}): Promise<TwoSidecars> {
  const mesh = await meshOfTwo();
  if (opts.ordersPolicy) await kubeletWrite(mesh.ordersPolicyDir, { 'policy.yaml': opts.ordersPolicy(mesh.appPort, mesh.tcpAppPort) });
  const logger = createLogger({ name: 'sidecar', level: 'error' });
  const f = mesh.frontendEnv;
  const frontendEnv = {
    ...f,
    MESHLET_DESTINATION_ADDRESSES: `${f.MESHLET_DESTINATION_ADDRESSES},imposter.shop:80=127.0.0.1:${mesh.ports.ordersInbound}`,
    MESHLET_DESTINATION_IDENTITIES: `${f.MESHLET_DESTINATION_IDENTITIES},imposter.shop:80=${NOT_ORDERS_ID}`,
    MESHLET_PLAINTEXT_DESTINATIONS: `127.0.0.1:${mesh.appPort}`,
  };
  const orders = new Sidecar(readSidecarConfig({ ...mesh.ordersEnv, ...opts.ordersEnv }), { logger });
  const frontend = new Sidecar(readSidecarConfig(frontendEnv), { logger });
  await Promise.all([orders.start(), frontend.start()]);
  return {
    mesh,
    orders,
    frontend,
    async setOrdersPolicy(yaml) {
      const hash = createHash('sha256').update(yaml).digest('hex');
      await kubeletWrite(mesh.ordersPolicyDir, { 'policy.yaml': yaml });
      // /ready names the hash of the policy in force.
      for (;;) {
        const ready = await (await fetch(`http://127.0.0.1:${mesh.ports.ordersAdmin}/ready`)).text();
        if (ready.includes(hash)) return;
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async stop() {
      await Promise.all([orders.stop(), frontend.stop()]);
      await mesh.close();
    },
  };
}

/** GET/POST through frontend's outbound listener (HTTP_PROXY style), one connection per call. */
export function viaFrontend(mesh: MeshOfTwo, authority: string, path: string, method = 'GET', body?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: mesh.ports.frontendOutbound, method, path: `http://${authority}${path}`, headers: { host: authority }, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Writes `raw` (one whole HTTP/1.1 request) on a fresh connection to `port` and reads the
 * response until the server closes (the request says `connection: close`): exactly the bytes
 * that crossed, both ways.
 */
export function rawExchange(port: number, raw: string): Promise<{ sent: number; received: Buffer }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => resolve({ sent: Buffer.byteLength(raw), received: Buffer.concat(chunks) }));
    socket.write(raw);
  });
}

/** One HTTP/2 (h2c, prior knowledge) request through frontend's outbound listener. */
export async function h2ViaFrontend(mesh: MeshOfTwo, authority: string, path: string): Promise<number> {
  const session = http2.connect(`http://127.0.0.1:${mesh.ports.frontendOutbound}`);
  try {
    return await new Promise<number>((resolve, reject) => {
      const stream = session.request({ ':method': 'GET', ':path': path, ':authority': authority });
      let status = 0;
      stream.on('response', (h) => (status = Number(h[':status'])));
      stream.on('error', reject);
      stream.resume();
      stream.on('end', () => resolve(status));
    });
  } finally {
    session.close();
  }
}

/** A sidecar's /metrics (text format), parsed. */
export async function scrape(adminPort: number): Promise<Sample[]> {
  const res = await fetch(`http://127.0.0.1:${adminPort}/metrics`);
  return [...parseExposition(await res.text()).samples];
}

/** Samples of `name` whose labels include `labels`. */
export function matching(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): Sample[] {
  return samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

/** The sum of the samples of `name` whose labels include `labels`. */
export function total(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number {
  return matching(samples, name, labels).reduce((a, s) => a + s.value, 0);
}
