import * as http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closedInsideOpenPolicy, expressDefaultHandler } from '../../unit/policy/express-router.ts';
import { startTwoSidecars, type TwoSidecars } from '../metrics/two-sidecars.ts';

/**
 * Issue 11 item 11 — policy vs app routers, through two real sidecars (frontend -> orders,
 * configured by environment, orders' policy mounted as kubelet mounts a ConfigMap). The
 * documented pattern "close /admin inside an open prefix" let /ADMIN, /Admin/users,
 * /internal/ and HEAD /report reach handlers the policy meant to close, because the app (Express
 * defaults) routes without case, with an optional trailing slash, and answers HEAD with GET.
 * The app here routes exactly as Express does by default (express-router.ts) and records which
 * handler ran. With `pathMatching: case-insensitive-trailing-slash` none of those spellings
 * reaches a closed handler; HEAD is decided as GET in every mode.
 */
async function meshWithPolicy(pathMatching: 'case-insensitive-trailing-slash' | undefined) {
  const two = await startTwoSidecars({ ordersPolicy: (appPort) => closedInsideOpenPolicy(pathMatching, appPort).replace('serviceAccount: api', 'serviceAccount: orders') });
  const ran: string[] = [];
  // Orders' app, replaced by one that routes as Express does by default.
  two.mesh.app.removeAllListeners('request');
  two.mesh.app.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const handler = expressDefaultHandler(req.method!, req.url!.split('?')[0]!);
    ran.push(`${req.method} ${req.url} -> ${handler}`);
    req.resume();
    res.writeHead(200, { 'content-type': 'text/plain', 'x-handler': handler });
    res.end(req.method === 'HEAD' ? undefined : handler);
  });
  return { two, ran, close: () => two.stop() };
}

describe('issue 11: closed routes inside an open prefix, Express-default app behind the real sidecars', () => {
  let tolerant: Awaited<ReturnType<typeof meshWithPolicy>>;
  let exact: Awaited<ReturnType<typeof meshWithPolicy>>;
  const agent = new http.Agent({ keepAlive: false });
  beforeAll(async () => {
    tolerant = await meshWithPolicy('case-insensitive-trailing-slash');
    exact = await meshWithPolicy(undefined);
  });
  afterAll(async () => {
    agent.destroy();
    await tolerant?.close();
    await exact?.close();
  });
  // Through frontend's outbound listener (HTTP_PROXY style) to orders.
  const send = (two: TwoSidecars, method: string, path: string) =>
    new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: two.mesh.ports.frontendOutbound, method, path: `http://orders.shop:80${path}`, headers: { host: 'orders.shop:80' }, agent }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      });
      req.on('error', reject);
      req.end();
    });

  it.each([
    ['GET', '/ADMIN', 'admin'],
    ['GET', '/Admin/users', 'admin'],
    ['GET', '/internal/', 'internal'],
    ['HEAD', '/report', 'report'],
  ])('pathMatching case-insensitive-trailing-slash: %s %s is denied by route "%s"; the app never runs its handler', async (method, path, route) => {
    const before = tolerant.ran.length;
    const res = await send(tolerant.two, method, path);
    expect(res.status).toBe(403);
    if (method !== 'HEAD') expect(JSON.parse(res.body).error.route).toBe(route);
    expect(tolerant.ran.length).toBe(before);
  });

  it('pathMatching case-insensitive-trailing-slash: the open prefix still reaches the app', async () => {
    const res = await send(tolerant.two, 'GET', '/Public/page/');
    expect(res.status).toBe(200);
    expect(res.headers['x-handler']).toBe('public');
    expect(tolerant.ran.at(-1)).toBe('GET /Public/page/ -> public');
  });

  it('exact mode (the default): HEAD /report is decided as the GET-only route and denied', async () => {
    const before = exact.ran.length;
    expect((await send(exact.two, 'HEAD', '/report')).status).toBe(403);
    expect(exact.ran.length).toBe(before);
  });

  it('exact mode: /ADMIN reaches the admin handler — the shape `policy check` warns about (POLICY_DENY_INSIDE_ALLOW)', async () => {
    const res = await send(exact.two, 'GET', '/ADMIN');
    expect(res.status).toBe(200);
    expect(res.headers['x-handler']).toBe('admin');
  });
});
