// ClusterWatch (src/control-plane/discovery/cluster-watch.ts) against an API server stand-in on
// loopback HTTPS that speaks list pages, chunked watch streams, bookmarks and 410 Gone — the
// paths a real API server cannot be made to take on demand (test/cluster/discovery.test.ts
// covers the real one).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ClusterWatch, type WatchRestartReason } from '../../../src/control-plane/discovery/cluster-watch.ts';
import { MeshView } from '../../../src/control-plane/discovery/mesh-view.ts';
import { loopbackServerCert } from '../identity-service/support.ts';

const pod = (name: string, ip: string, meshed: boolean) => ({
  metadata: { name, namespace: 'shop', annotations: meshed ? { 'meshlet.io/status': '{}' } : {} },
  spec: { serviceAccountName: name, containers: [{ name: 'app' }] },
  status: { phase: 'Running', podIP: ip },
});

interface Fake {
  url: string;
  requests: string[];
  /** Per resource path: what LIST answers (called per list) and what a WATCH does. */
  list: Map<string, () => { status?: number; items: unknown[]; rv: string; cont?: string }>;
  /** Returns an HTTP status to fail the watch with it instead. */
  watch: Map<string, (res: import('node:http').ServerResponse, rv: string) => void | number>;
  server: Server;
}

async function fakeApi(token: string): Promise<Fake> {
  const tls = await loopbackServerCert();
  const fake = { requests: [] as string[], list: new Map(), watch: new Map() } as Omit<Fake, 'url' | 'server'>;
  const server = createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
    const url = new URL(req.url!, 'https://x');
    fake.requests.push(`${url.pathname}?${url.searchParams}`);
    if (req.headers.authorization !== `Bearer ${token}`) return void res.writeHead(401).end();
    if (url.searchParams.get('watch') === '1') {
      const w = fake.watch.get(url.pathname);
      if (!w) return void res.writeHead(200).end();
      const status = w(res, url.searchParams.get('resourceVersion') ?? '');
      if (typeof status === 'number') res.writeHead(status).end();
      return;
    }
    const l = fake.list.get(url.pathname)?.() ?? { items: [], rv: '1' };
    res.writeHead(l.status ?? 200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kind: 'List', metadata: { resourceVersion: l.rv, ...(l.cont ? { continue: l.cont } : {}) }, items: l.items }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return Object.assign(fake, { server, url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, caPem: tls.certPem, tlsCert: tls.certPem }) as Fake & { caPem: string };
}

const until = async (check: () => boolean, what: string) => {
  for (const end = Date.now() + 10_000; !check(); ) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('ClusterWatch', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function setup() {
    const dir = await mkdtemp(join(tmpdir(), 'meshlet-watch-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'token'), 'the-token\n');
    const api = (await fakeApi('the-token')) as Fake & { caPem: string };
    cleanups.push(() => new Promise((r) => (api.server.closeAllConnections(), api.server.close(r))));
    const view = new MeshView({ trustDomain: 'mesh.test', clusterDomain: 'cluster.local', clusterCidrs: ['10.244.0.0/16'] });
    const restarts: [string, WatchRestartReason][] = [];
    let now = 0;
    const watch = new ClusterWatch({
      apiServerUrl: api.url,
      caPem: api.caPem,
      tokenPath: join(dir, 'token'),
      view,
      maxStalenessMs: 1_000,
      backoff: { initialMs: 10, maxMs: 50 },
      metrics: { objects() {}, restart: (r, why) => restarts.push([r, why]) },
      now: () => now,
    });
    cleanups.push(() => watch.close());
    return { api, view, watch, restarts, setNow: (t: number) => (now = t) };
  }

  it('lists every page, applies watch events, follows bookmarks, and re-lists after 410 Gone', async () => {
    const { api, view, watch, restarts } = await setup();
    let lists = 0;
    api.list.set('/api/v1/pods', () => {
      lists++;
      if (lists === 1) return { items: [pod('a', '10.244.0.1', true)], rv: '10', cont: 'page2' };
      if (lists === 2) return { items: [pod('b', '10.244.0.2', false)], rv: '10' };
      // After the 410: a fresh list in which "a" is gone.
      return { items: [pod('c', '10.244.0.3', true)], rv: '50' };
    });
    let watches = 0;
    api.watch.set('/api/v1/pods', (res, rv) => {
      watches++;
      res.writeHead(200, { 'content-type': 'application/json' });
      if (watches === 1) {
        expect(rv).toBe('10');
        res.write(JSON.stringify({ type: 'MODIFIED', object: { ...pod('b', '10.244.0.2', true), metadata: { ...pod('b', '10.244.0.2', true).metadata, resourceVersion: '11' } } }) + '\n');
        res.write(JSON.stringify({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '20' } } }) + '\n');
        return void res.end();
      }
      if (watches === 2) {
        expect(rv).toBe('20');
        return void res.end(JSON.stringify({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version: 20 (45)' } }) + '\n');
      }
      // Hold the last watch open.
    });
    watch.start();
    await watch.whenSynced();
    await until(() => lists === 3 && view.resolve({ host: '10.244.0.3', port: 80 }, 'shop').kind === 'meshed', 're-list after 410');
    expect(view.resolve({ host: '10.244.0.1', port: 80 }, 'shop').kind).toBe('unknown');
    expect(view.resolve({ host: '10.244.0.2', port: 80 }, 'shop').kind).toBe('unknown');
    expect(restarts).toEqual(expect.arrayContaining([['pods', 'closed'], ['pods', 'expired']]));
    expect(api.requests.filter((r) => r.startsWith('/api/v1/pods?') && r.includes('continue=page2'))).toHaveLength(1);
    expect(watch.fresh()).toEqual({ ok: true });
  });

  it('not fresh before the first lists, nor when a watch stays down past maxStaleness; errors back off and re-list', async () => {
    const { api, watch, restarts, setNow } = await setup();
    let failing = false;
    api.list.set('/api/v1/services', () => (failing ? { status: 500, items: [], rv: '' } : { items: [], rv: '5' }));
    api.watch.set('/api/v1/services', () => {
      // The first watch fails (and so does the re-list) until the test lets it recover.
      failing = true;
      return 500;
    });
    expect(watch.fresh()).toMatchObject({ ok: false, reason: 'not_synced' });
    watch.start();
    await watch.whenSynced();
    await until(() => restarts.some(([r, why]) => r === 'services' && why === 'error'), 'a failed re-list');
    setNow(500);
    expect(watch.fresh()).toEqual({ ok: true });
    setNow(5_000);
    expect(watch.fresh()).toMatchObject({ ok: false, reason: 'stale' });
    api.watch.set('/api/v1/services', (res) => void res.writeHead(200, { 'content-type': 'application/json' }));
    failing = false;
    await until(() => watch.fresh().ok, 'the view to be fresh again');
  });
});
