import { Agent, request } from 'node:https';
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTwoSidecars, type TwoSidecars } from '../metrics/two-sidecars.ts';
import { FRONTEND_ID, svidFiles } from '../sidecar/mesh-of-two.ts';

/**
 * A policy change reaches a connection that is already open: the real orders sidecar (env
 * only, its policy mounted as kubelet mounts a ConfigMap) is called by frontend's identity over
 * ONE keep-alive mTLS connection; after the ..data swap the next request on that same
 * connection is decided by the new policy.
 */
const policy = (appPort: number, prefix: string) => `apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
spec:
  servers:
    - name: orders
      selector: { serviceAccount: orders }
      ports: [{ port: ${appPort}, protocol: http }]
      routes:
        - name: open
          path: { prefix: ${prefix} }
          callers: [{ spiffeId: "${FRONTEND_ID}" }]
`;

let two: TwoSidecars;
beforeAll(async () => {
  two = await startTwoSidecars({ ordersPolicy: (appPort) => policy(appPort, '/a') });
});
afterAll(async () => {
  await two?.stop();
});

describe('a policy change reaches a connection that is already open', () => {
  it('denies on the same keep-alive mTLS connection after the ..data swap', async () => {
    const files = await svidFiles(two.mesh.ca, FRONTEND_ID);
    const agent = new Agent({ keepAlive: true, maxSockets: 1, cert: files['tls.crt'], key: files['tls.key'], ca: files['ca.crt'], checkServerIdentity: () => undefined });
    const sockets = new Set<Socket>();
    const get = (path: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: two.mesh.ports.ordersInbound, path, agent, headers: { host: 'orders' } }, (res) => {
          let body = '';
          res.on('data', (d) => (body += d));
          res.on('end', () => resolve({ status: res.statusCode!, body }));
        });
        req.on('socket', (s) => sockets.add(s));
        req.on('error', reject).end();
      });
    try {
      expect((await get('/a/1')).status).toBe(200);
      await two.setOrdersPolicy(policy(two.mesh.appPort, '/b'));
      const denied = await get('/a/1');
      expect(denied.status).toBe(403);
      expect(JSON.parse(denied.body)).toMatchObject({ error: { code: 'MESHLET_DENIED', route: null } });
      expect((await get('/b/1')).status).toBe(200);
      expect(sockets.size).toBe(1);
    } finally {
      agent.destroy();
    }
  });
});
