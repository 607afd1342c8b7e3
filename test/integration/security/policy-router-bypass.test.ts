import * as http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PolicyStore } from '../../../src/data-plane/policy/store.ts';
import { PolicyAuthorizer } from '../../../src/data-plane/sidecar/policy-authorizer.ts';
import { kubeletWrite } from '../../support/kubelet-volume.ts';
import { closedInsideOpenPolicy, expressDefaultHandler } from '../../unit/policy/express-router.ts';
import { IDS, request } from '../proxy/support/mesh-fixture.ts';
import { ORDERS_AUTHORITY, startMeshPair, type MeshPair } from '../proxy/support/mesh-pair.ts';

/**
 * Issue 11 item 11 — policy vs app routers, through the real proxy pair and the real policy
 * store. The documented pattern "close /admin inside an open prefix" let /ADMIN, /Admin/users,
 * /internal/ and HEAD /report reach handlers the policy meant to close, because the app (Express
 * defaults) routes without case, with an optional trailing slash, and answers HEAD with GET.
 * The app here routes exactly as Express does by default (express-router.ts) and records which
 * handler ran. With `pathMatching: case-insensitive-trailing-slash` none of those spellings
 * reaches a closed handler; HEAD is decided as GET in every mode.
 */
const frontend = IDS.frontend; // spiffe://cluster.local/ns/shop/sa/frontend: authenticated, not ops

async function meshWithPolicy(policyFor: (appPort: number) => string) {
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-router-bypass-'));
  // The real store and authorizer the sidecar wires; the policy names the app port, known once the pair is up.
  const store = new PolicyStore({ dir, self: { namespace: 'shop', serviceAccount: 'api' }, meshDefault: 'deny', pollMs: 0 });
  const mesh = await startMeshPair({ authorizer: new PolicyAuthorizer(store) });
  await kubeletWrite(dir, { 'policy.yaml': policyFor(mesh.appPort) });
  const first = await store.start();
  if (first.result !== 'ok') throw new Error(`policy not loaded: ${JSON.stringify(first.errors)}`);
  const ran: string[] = [];
  mesh.setHandler((req, res) => {
    const handler = expressDefaultHandler(req.method!, req.url!.split('?')[0]!);
    ran.push(`${req.method} ${req.url} -> ${handler}`);
    req.resume();
    res.writeHead(200, { 'content-type': 'text/plain', 'x-handler': handler });
    res.end(req.method === 'HEAD' ? undefined : handler);
  });
  return {
    mesh,
    ran,
    async close() {
      store.close();
      await mesh.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

describe('issue 11: closed routes inside an open prefix, Express-default app behind the real proxy', () => {
  let tolerant: Awaited<ReturnType<typeof meshWithPolicy>>;
  let exact: Awaited<ReturnType<typeof meshWithPolicy>>;
  const agent = new http.Agent({ keepAlive: false });
  beforeAll(async () => {
    tolerant = await meshWithPolicy((port) => closedInsideOpenPolicy('case-insensitive-trailing-slash', port));
    exact = await meshWithPolicy((port) => closedInsideOpenPolicy(undefined, port));
  });
  afterAll(async () => {
    agent.destroy();
    await tolerant?.close();
    await exact?.close();
  });
  const send = (mesh: MeshPair, method: string, path: string) => request(mesh.outboundPort, { method, path, headers: { host: ORDERS_AUTHORITY }, agent });

  it.each([
    ['GET', '/ADMIN', 'admin'],
    ['GET', '/Admin/users', 'admin'],
    ['GET', '/internal/', 'internal'],
    ['HEAD', '/report', 'report'],
  ])('pathMatching case-insensitive-trailing-slash: %s %s is denied by route "%s"; the app never runs its handler', async (method, path, route) => {
    const before = tolerant.ran.length;
    const res = await send(tolerant.mesh, method, path);
    expect(res.status).toBe(403);
    if (method !== 'HEAD') expect(JSON.parse(res.body).error.route).toBe(route);
    expect(tolerant.ran.length).toBe(before);
  });

  it('pathMatching case-insensitive-trailing-slash: the open prefix still reaches the app', async () => {
    const res = await send(tolerant.mesh, 'GET', '/Public/page/');
    expect(res.status).toBe(200);
    expect(res.headers['x-handler']).toBe('public');
    expect(tolerant.ran.at(-1)).toBe('GET /Public/page/ -> public');
  });

  it('exact mode (the default): HEAD /report is decided as the GET-only route and denied', async () => {
    const before = exact.ran.length;
    expect((await send(exact.mesh, 'HEAD', '/report')).status).toBe(403);
    expect(exact.ran.length).toBe(before);
  });

  it('exact mode: /ADMIN reaches the admin handler — the shape `policy check` warns about (POLICY_DENY_INSIDE_ALLOW)', async () => {
    const res = await send(exact.mesh, 'GET', '/ADMIN');
    expect(res.status).toBe(200);
    expect(res.headers['x-handler']).toBe('admin');
  });
});
