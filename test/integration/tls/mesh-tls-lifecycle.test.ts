import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WorkloadApiSource } from '../../../src/data-plane/identity/sources/workload-api.ts';
import { StaticSvidSource } from '../../../src/data-plane/identity/sources/static.ts';
import { MeshTls } from '../../../src/data-plane/tls/mesh-tls.ts';
import { Fixture, identity, roundTrip, trustDomain, type TrustDomain } from './mesh-fixture.ts';

describe('MeshTls lifecycle and the static identity source', () => {
  let td: TrustDomain;
  const fx = new Fixture();
  beforeAll(async () => {
    td = await trustDomain('cluster.local');
  });
  afterEach(() => fx.close());

  it('refuses a source that has not produced an SVID yet', async () => {
    const source = new WorkloadApiSource({ endpoint: 'unix:///nonexistent/meshlet-test.sock' });
    fx.defer(() => source.close());
    expect(() => new MeshTls(source)).toThrow(expect.objectContaining({ name: 'TlsSetupError', code: 'TLS_SOURCE_NOT_STARTED' }));
  });

  it('after close: ignores rotations, detaches servers and refuses new options', async () => {
    const { tls, source } = await fx.meshTls(await identity(td, '/ns/shop/sa/orders'));
    const server = createServer(tls.serverOptions());
    fx.defer(() => void server.close());
    tls.attachServer(server);
    expect(server.listenerCount('keylog')).toBe(1);
    expect(server.listenerCount('secureConnection')).toBe(1);
    const rotated: string[] = [];
    tls.onRotate((s) => rotated.push(s.svid.spiffeId.id));

    tls.close();
    expect(server.listenerCount('keylog')).toBe(0);
    expect(server.listenerCount('secureConnection')).toBe(0);
    source.rotate(await identity(td, '/ns/shop/sa/orders'));
    expect(rotated).toEqual([]);
    expect(() => tls.serverOptions()).toThrow(expect.objectContaining({ code: 'TLS_CLOSED' }));
    expect(() => tls.connectOptions({})).toThrow(expect.objectContaining({ code: 'TLS_CLOSED' }));
  });

  it('attachServer is idempotent and its detach undoes it', async () => {
    const { tls } = await fx.meshTls(await identity(td, '/ns/shop/sa/orders'));
    const server = createServer(tls.serverOptions());
    fx.defer(() => void server.close());
    const detach = tls.attachServer(server);
    expect(tls.attachServer(server)).toBe(detach);
    expect(server.listenerCount('keylog')).toBe(1);
    detach();
    expect(server.listenerCount('keylog')).toBe(0);
    expect(server.listenerCount('secureConnection')).toBe(0);
  });

  it('a rotation listener that throws does not stop the rotation; the source reports the error', async () => {
    const { tls, source } = await fx.meshTls(await identity(td, '/ns/shop/sa/orders'));
    const errors: Error[] = [];
    source.onError((err) => errors.push(err));
    const seen: string[] = [];
    tls.onRotate(() => {
      throw new Error('listener bug');
    });
    tls.onRotate((s) => seen.push(s.svid.certChainPem));
    const next = await identity(td, '/ns/shop/sa/orders');
    source.rotate(next);
    expect(seen).toEqual([next.svid.certChainPem]);
    expect(errors.map((e) => e.message)).toEqual(['listener bug']);
  });

  it('StaticSvidSource.fromPemFiles loads what `meshlet ca issue` writes, and it serves mTLS', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'meshlet-static-'));
    fx.defer(() => rm(dir, { recursive: true, force: true }));
    const issued = await identity(td, '/ns/shop/sa/orders');
    await writeFile(join(dir, 'svid.crt'), issued.svid.certChainPem);
    await writeFile(join(dir, 'svid.key'), issued.svid.privateKeyPem);
    await writeFile(join(dir, 'bundle.crt'), td.root.bundlePem);

    const source = await StaticSvidSource.fromPemFiles({ svid: join(dir, 'svid.crt'), key: join(dir, 'svid.key'), bundle: join(dir, 'bundle.crt') });
    expect(source.kind).toBe('static');
    const snapshot = await source.start();
    expect(snapshot.svid.spiffeId.id).toBe('spiffe://cluster.local/ns/shop/sa/orders');
    expect([...snapshot.bundles.keys()]).toEqual(['cluster.local']);

    const server = new MeshTls(source);
    fx.defer(async () => {
      server.close();
      await source.close();
    });
    const srv = await fx.server(server);
    const client = await fx.meshTls(await identity(td, '/ns/shop/sa/frontend'));
    const socket = await fx.connect(client.tls, srv.port, { spiffeId: 'spiffe://cluster.local/ns/shop/sa/orders' });
    expect(await roundTrip(socket, 'from files')).toBe('from files');
  });

  it('StaticSvidSource.fromPemFiles refuses a key that does not belong to the certificate', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'meshlet-static-'));
    fx.defer(() => rm(dir, { recursive: true, force: true }));
    const a = await identity(td, '/ns/shop/sa/orders');
    const b = await identity(td, '/ns/shop/sa/orders');
    await writeFile(join(dir, 'svid.crt'), a.svid.certChainPem);
    await writeFile(join(dir, 'svid.key'), b.svid.privateKeyPem);
    await writeFile(join(dir, 'bundle.crt'), td.root.bundlePem);
    await expect(StaticSvidSource.fromPemFiles({ svid: join(dir, 'svid.crt'), key: join(dir, 'svid.key'), bundle: join(dir, 'bundle.crt') })).rejects.toMatchObject({
      code: 'PEM_KEY_MISMATCH',
    });
  });

  it('a closed StaticSvidSource no longer rotates', async () => {
    const first = await identity(td, '/ns/shop/sa/orders');
    const source = new StaticSvidSource(first);
    const updates: unknown[] = [];
    source.onUpdate((s) => updates.push(s));
    await source.close();
    source.rotate(await identity(td, '/ns/shop/sa/orders'));
    expect(updates).toEqual([]);
    expect(source.current()).toBe(first);
  });
});
