// A Kubernetes API server stand-in for discovery's cluster watch (src/control-plane/discovery/
// cluster-watch.ts): HTTPS with a self-signed certificate for the address it listens on, a
// bearer token checked on every request, LIST answering a fixed set of objects per resource
// path, and WATCH held open with nothing to say (the cluster does not change). Used by
// test/integration/discovery/sidecar-client.test.ts (on loopback) and
// test/e2e/redis-meshed.test.ts (on the e2e cluster's host link, for an identity service in a
// pod). test/integration/discovery/cluster-watch.test.ts has its own, programmable one (pages,
// watch events, 410 Gone).
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { loopbackServerCert } from '../integration/identity-service/support.ts';

export interface KubeApiStandIn {
  /** `https://<host>:<port>` */
  url: string;
  /** The self-signed certificate the server presents: the watcher's MESHLET_KUBERNETES_CA_FILE. */
  caPem: string;
  server: Server;
  /** Every request's path and query, in order (what the watcher asked). */
  requests: string[];
  close(): Promise<void>;
}

export interface KubeApiStandInOptions {
  /** The bearer token every request must carry (else 401). */
  token: string;
  /** What LIST answers, per resource path (`/api/v1/pods`, `/api/v1/services`, `/apis/discovery.k8s.io/v1/endpointslices`). */
  objects: Readonly<Record<string, readonly unknown[]>>;
  /** An IPv4 address to listen on; the certificate names it. Default 127.0.0.1. */
  host?: string;
}

export async function startKubeApiStandIn(options: KubeApiStandInOptions): Promise<KubeApiStandIn> {
  const host = options.host ?? '127.0.0.1';
  const tls = await loopbackServerCert([{ type: 'ip', value: host }]);
  const requests: string[] = [];
  const server = createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
    const url = new URL(req.url!, 'https://x');
    requests.push(`${url.pathname}${url.search}`);
    if (req.headers.authorization !== `Bearer ${options.token}`) return void res.writeHead(401).end();
    if (url.searchParams.get('watch') === '1') return void res.writeHead(200, { 'content-type': 'application/json' }).flushHeaders();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kind: 'List', metadata: { resourceVersion: '1' }, items: options.objects[url.pathname] ?? [] }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  return {
    url: `https://${host}:${(server.address() as AddressInfo).port}`,
    caPem: tls.certPem,
    server,
    requests,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
