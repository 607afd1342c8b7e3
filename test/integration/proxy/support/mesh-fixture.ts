import * as http from 'node:http';
import type * as net from 'node:net';
import { createRootCa, issueSvid, type CertificateAuthority } from '../../../../src/control-plane/identity-service/ca.ts';
import { MeshTls } from '../../../../src/data-plane/tls/mesh-tls.ts';
import { StaticSvidSource } from '../../../../src/data-plane/identity/sources/static.ts';
import type { X509Svid } from '../../../../src/data-plane/identity/svid.ts';

/** A trust domain and the SVIDs the proxy tests use, issued by the real meshlet CA code. */
export interface MeshPki {
  readonly ca: CertificateAuthority;
  readonly svids: Record<'frontend' | 'orders' | 'imposter', X509Svid & { bundlePem: string; id: string }>;
}

export const IDS = {
  frontend: 'spiffe://cluster.local/ns/shop/sa/frontend',
  orders: 'spiffe://cluster.local/ns/shop/sa/orders',
  imposter: 'spiffe://cluster.local/ns/shop/sa/imposter',
} as const;

export async function createMeshPki(): Promise<MeshPki> {
  const ca = await createRootCa({ trustDomain: 'cluster.local' });
  const issue = async (id: string) => ({ ...(await issueSvid(ca, { spiffeId: id })), id });
  return {
    ca,
    svids: { frontend: await issue(IDS.frontend), orders: await issue(IDS.orders), imposter: await issue(IDS.imposter) },
  };
}

/** The real TLS layer (src/data-plane/tls) over a static source holding one SVID of the test PKI. */
export function meshTlsFor(svid: MeshPki['svids']['frontend']): MeshTls {
  const { id: _id, bundlePem, ...x509 } = svid;
  return new MeshTls(new StaticSvidSource({ svid: x509, bundles: new Map([['cluster.local', bundlePem]]) }));
}

/** Listens on 127.0.0.1:0; resolves with the port. */
export function listen(server: net.Server, host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve((server.address() as net.AddressInfo).port));
  });
}

export function closeServer(server: net.Server & { closeAllConnections?: () => void }): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
    server.closeAllConnections?.();
  });
}

/** A response, body read whole (tests only). */
export interface Fetched {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request through an http.Agent (keep-alive when the agent keeps alive). */
export function request(
  port: number,
  opts: { method?: string; path?: string; headers?: http.OutgoingHttpHeaders | string[]; body?: string | Buffer; agent?: http.Agent | false; host?: string },
): Promise<Fetched> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: opts.host ?? '127.0.0.1', port, method: opts.method ?? 'GET', path: opts.path ?? '/', headers: opts.headers, agent: opts.agent },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** Polls `cond` until true or the (generous) deadline passes. */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
