import { createServer, request, Agent, type Server } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { decide } from '../../../src/policy/decide.ts';
import { ProxyError, respondWithError } from '../../../src/proxy/http/errors.ts';
import { normalizePath } from '../../../src/policy/normalize-path.ts';
import { PolicyStore } from '../../../src/policy/store.ts';
import { kubeletWrite } from '../../support/kubelet-volume.ts';

// The peer the (stand-in) inbound listener verified for its one connection. In the sidecar it
// comes from the mTLS handshake; here the point is the policy lookup per request.
const PEER = 'spiffe://cluster.local/ns/web/sa/frontend';

const policy = (path: string) => `apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
spec:
  servers:
    - name: orders
      selector: { serviceAccount: orders }
      ports: [{ port: 8080, protocol: http }]
      routes:
        - name: open
          path: { prefix: ${path} }
          callers: [{ spiffeId: "${PEER}" }]
`;

describe('a policy change reaches a connection that is already open', () => {
  let dir: string | undefined;
  let store: PolicyStore | undefined;
  let server: Server | undefined;
  let agent: Agent | undefined;
  afterEach(async () => {
    store?.close();
    agent?.destroy();
    server?.closeAllConnections();
    await new Promise((r) => (server ? server.close(r) : r(undefined)));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('denies on the same keep-alive socket after the ..data swap', async () => {
    dir = await mkdtemp(join(tmpdir(), 'meshlet-policy-conn-'));
    await kubeletWrite(dir, { 'policy.yaml': policy('/a') });
    store = new PolicyStore({ dir, self: { namespace: 'shop', serviceAccount: 'orders' }, meshDefault: 'deny', debounceMs: 20, pollMs: 200 });
    await store.start();
    const s = store;
    let connections = 0;
    server = createServer((req, res) => {
      const n = normalizePath(req.url ?? '');
      if (!n.ok) {
        respondWithError(res, new ProxyError('MESHLET_BAD_PATH', `request path refused: ${n.reason}`));
        return;
      }
      // Looked up per request, not per connection: this is what makes a reload reach open sockets.
      const d = decide(s.current(), { peer: PEER, port: 8080, method: req.method ?? 'GET', path: n.path });
      if (d.decision === 'deny') {
        respondWithError(res, new ProxyError('MESHLET_DENIED', 'request denied by policy', { details: { route: d.route, reason: d.reason } }));
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain' }).end('app');
    });
    server.on('connection', () => connections++);
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const get = (path: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        request({ host: '127.0.0.1', port, path, agent }, (res) => {
          let body = '';
          res.on('data', (d) => (body += d));
          res.on('end', () => resolve({ status: res.statusCode!, body }));
        })
          .on('error', reject)
          .end();
      });

    expect(await get('/a/1')).toEqual({ status: 200, body: 'app' });
    await kubeletWrite(dir, { 'policy.yaml': policy('/b') });
    const deadline = Date.now() + 15_000;
    let last = await get('/a/1');
    while (last.status === 200 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 25));
      last = await get('/a/1');
    }
    expect(last.status).toBe(403);
    expect(JSON.parse(last.body)).toMatchObject({ error: { code: 'MESHLET_DENIED', route: null } });
    expect(await get('/b/1')).toEqual({ status: 200, body: 'app' });
    expect(connections).toBe(1);
  });
});
