import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RevocationListConfigMap } from '../../../src/control-plane/identity-service/revocation-configmap.ts';
import type { RevocationReload } from '../../../src/data-plane/identity/revocation/revocation-list-file.ts';
import { formatRevocationList } from '../../../src/data-plane/identity/revocation/revocation-list.ts';
import { loopbackServerCert } from '../identity-service/support.ts';

/**
 * The identity service's ConfigMap revocation list (MESHLET_IDENTITY_REVOCATION_LIST=configmap:…)
 * in the failure modes a real API server will not produce on demand: an API server that refuses
 * at start, a watch that breaks, `410 Gone`. A programmable HTTPS stand-in speaks the list and
 * watch protocol (the real kube-apiserver path — applied, malformed, deleted, RBAC by resource
 * name — is test/cluster/identity.test.ts and deploy-apply.test.ts).
 */
const TOKEN = 'identity-token';
const A = 'spiffe://cluster.local/ns/shop/sa/orders';
const B = 'spiffe://cluster.local/ns/web/sa/frontend';

interface StandIn {
  url: string;
  caPem: string;
  server: Server;
  requests: string[];
  /** What LIST answers next. */
  list: { status: number; body: unknown };
  /** The open watch responses (events are written to the newest). */
  watches: ServerResponse[];
  /** What a WATCH answers with before streaming (200 streams; anything else is the status). */
  watchStatus: number;
}

let api: StandIn;
let dir: string;
let tokenPath: string;
let follower: RevocationListConfigMap | undefined;
let reloads: RevocationReload[];

const configMap = (text: string | undefined, rv: string) => ({ metadata: { name: 'meshlet-revocations', resourceVersion: rv }, ...(text === undefined ? {} : { data: { 'revocations.json': text } }) });
const listOf = (items: unknown[], rv: string) => ({ kind: 'ConfigMapList', metadata: { resourceVersion: rv }, items });
const revoking = (id: string) => formatRevocationList([{ spiffeId: id, revokedAt: '2026-12-04T07:00:00Z' }]);

async function startStandIn(): Promise<StandIn> {
  const tls = await loopbackServerCert();
  const state = { requests: [] as string[], list: { status: 200, body: listOf([], '1') as unknown }, watches: [] as ServerResponse[], watchStatus: 200 };
  const server = createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
    const url = new URL(req.url!, 'https://x');
    state.requests.push(`${url.pathname}${url.search}`);
    if (req.headers.authorization !== `Bearer ${TOKEN}`) return void res.writeHead(401).end();
    if (url.searchParams.get('watch') === '1') {
      if (state.watchStatus !== 200) return void res.writeHead(state.watchStatus, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', message: 'too old resource version' }));
      res.writeHead(200, { 'content-type': 'application/json' });
      res.flushHeaders();
      state.watches.push(res);
      return;
    }
    res.writeHead(state.list.status, { 'content-type': 'application/json' }).end(JSON.stringify(state.list.body));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const s = state as StandIn;
  s.server = server;
  s.url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  s.caPem = tls.certPem;
  return s;
}

async function until(check: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function newFollower(): RevocationListConfigMap {
  follower = new RevocationListConfigMap({ namespace: 'meshlet-system', name: 'meshlet-revocations', apiServerUrl: api.url, caPem: api.caPem, tokenPath, backoff: { initialMs: 20, maxMs: 50 } });
  follower.onReload((r) => reloads.push(r));
  return follower;
}

const event = (type: string, object: unknown) => api.watches.at(-1)!.write(`${JSON.stringify({ type, object })}\n`);

beforeEach(async () => {
  api = await startStandIn();
  dir = await mkdtemp(join(tmpdir(), 'meshlet-cm-revocations-'));
  tokenPath = join(dir, 'token');
  await writeFile(tokenPath, `${TOKEN}\n`);
  reloads = [];
});
afterEach(async () => {
  follower?.close();
  follower = undefined;
  for (const w of api.watches) w.destroy();
  api.server.closeAllConnections();
  await new Promise((r) => api.server.close(r));
  await rm(dir, { recursive: true, force: true });
});

describe('RevocationListConfigMap', () => {
  it('asks for that one ConfigMap by field selector (what RBAC by resourceNames requires), lists then watches from the list version', async () => {
    api.list.body = listOf([configMap(revoking(A), '7')], '9');
    const set = await newFollower().start();
    expect(set.has(A)).toBe(true);
    expect(reloads.map((r) => r.result)).toEqual(['ok']);
    await until(() => api.watches.length === 1, 'the watch');
    expect(api.requests[0]).toBe('/api/v1/namespaces/meshlet-system/configmaps?fieldSelector=metadata.name%3Dmeshlet-revocations');
    expect(api.requests[1]).toMatch(/^\/api\/v1\/namespaces\/meshlet-system\/configmaps\?fieldSelector=metadata\.name%3Dmeshlet-revocations&watch=1&resourceVersion=9&allowWatchBookmarks=true&timeoutSeconds=\d+$/);
  });

  it('fails closed at start: an API server that refuses (RBAC) or a malformed list refuses the start with the reason', async () => {
    api.list = { status: 403, body: { kind: 'Status', message: 'configmaps "meshlet-revocations" is forbidden: User "system:serviceaccount:meshlet-system:meshlet-identity" cannot list resource "configmaps"' } };
    await expect(newFollower().start()).rejects.toMatchObject({ code: 'REVOCATION_LIST_UNREADABLE', message: expect.stringContaining('answered HTTP 403: configmaps "meshlet-revocations" is forbidden') });
    api.list = { status: 200, body: listOf([configMap('{"apiVersion":"meshlet.io/v1alpha1"}', '3')], '3') };
    await expect(newFollower().start()).rejects.toMatchObject({ code: 'REVOCATION_LIST_INVALID', message: expect.stringMatching(/^configmap meshlet-system\/meshlet-revocations: /) });
  });

  it('no ConfigMap at start is the empty list; one that appears is applied; a malformed one and a deleted one keep the last good list', async () => {
    const set = await newFollower().start();
    expect(set.size).toBe(0);
    expect(reloads.map((r) => r.result)).toEqual(['absent']);
    await until(() => api.watches.length === 1, 'the watch');
    event('ADDED', configMap(revoking(A), '10'));
    await until(() => follower!.has(A), 'A revoked');
    event('MODIFIED', configMap('not json', '11'));
    await until(() => reloads.at(-1)!.result === 'rejected', 'the malformed list refused');
    expect(reloads.at(-1)!.error!.code).toBe('REVOCATION_LIST_INVALID');
    expect(follower!.has(A)).toBe(true);
    event('DELETED', configMap(undefined, '12'));
    await until(() => reloads.at(-1)!.error?.code === 'REVOCATION_LIST_MISSING', 'the deletion refused');
    expect(follower!.has(A)).toBe(true);
  });

  it('410 Gone lists again; an API server down later keeps the last good list and reports it once', async () => {
    api.list.body = listOf([configMap(revoking(A), '5')], '5');
    await newFollower().start();
    await until(() => api.watches.length === 1, 'the watch');
    // The version was compacted away: the next list says B instead.
    api.list.body = listOf([configMap(revoking(B), '40')], '40');
    event('ERROR', { kind: 'Status', code: 410, message: 'too old resource version: 5 (39)' });
    await until(() => follower!.has(B), 'the relisted ConfigMap applied');
    expect(follower!.has(A)).toBe(false);
    await until(() => api.watches.length === 2, 'the watch again');
    // The API server fails: list and watch answer 500 for a while.
    const before = reloads.length;
    api.list = { status: 500, body: { kind: 'Status', message: 'etcdserver: leader changed' } };
    api.watchStatus = 500;
    api.watches.at(-1)!.end();
    await until(() => api.requests.filter((r) => !r.includes('watch=1')).length >= 5, 'several relists');
    const rejected = reloads.slice(before).filter((r) => r.result === 'rejected');
    expect(rejected.length).toBe(1);
    expect(rejected[0]!.error).toMatchObject({ code: 'REVOCATION_LIST_UNREADABLE', message: expect.stringContaining('the last good list stays in force') });
    expect(follower!.has(B)).toBe(true);
    // Back: the same list again changes nothing and reports nothing.
    api.list = { status: 200, body: listOf([configMap(revoking(B), '41')], '41') };
    api.watchStatus = 200;
    await until(() => api.watches.length === 3, 'the watch once the API server is back');
    expect(reloads.slice(before).map((r) => r.result)).toEqual(['rejected']);
  });
});
