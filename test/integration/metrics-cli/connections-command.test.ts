import { afterEach, describe, expect, it } from 'vitest';
import { once } from 'node:events';
import { createServer as createHttpServer } from 'node:http';
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { Registry } from 'prom-client';
import { AdminServer } from '../../../src/data-plane/admin/admin-server.ts';
import { ConnectionRegistry } from '../../../src/data-plane/proxy/connection-registry.ts';
import { cells, meshlet, waitFor } from './support.ts';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const FRONTEND = 'spiffe://cluster.local/ns/web/sa/frontend';

async function listen(server: Server | ReturnType<typeof createHttpServer>): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return (server.address() as AddressInfo).port;
}

async function adminFor(connections: () => unknown[]): Promise<string> {
  const admin = new AdminServer({ readiness: () => ({ ready: true, checks: {} }), registry: new Registry(), connections });
  const { port } = await admin.listen(0, '127.0.0.1');
  cleanups.push(() => admin.close());
  return `http://127.0.0.1:${port}`;
}

describe('meshlet connections', () => {
  it('prints the live connections of a real registry as an aligned table, and as JSON', async () => {
    const registry = new ConnectionRegistry();
    const accepted: Socket[] = [];
    const port = await listen(createServer((s) => accepted.push(s)));
    const clientA = createConnection(port, '127.0.0.1');
    const clientB = createConnection(port, '127.0.0.1');
    cleanups.push(() => void clientA.destroy(), () => void clientB.destroy());
    await Promise.all([once(clientA, 'connect'), once(clientB, 'connect')]);
    await waitFor(() => accepted.length === 2, 'two accepts');
    for (const s of accepted) cleanups.push(() => void s.destroy());
    const [a, b] = [accepted.find((s) => s.remotePort === clientA.localPort)!, accepted.find((s) => s.remotePort === clientB.localPort)!];
    const inbound = registry.track('inbound', 'accepted', a);
    inbound.peerIdentity = FRONTEND;
    inbound.tlsVersion = 'TLSv1.3';
    inbound.requests = 3;
    registry.track('outbound', 'accepted', b);
    a.resume();
    clientA.write(Buffer.alloc(2048));
    a.write(Buffer.alloc(100));
    await waitFor(() => a.bytesRead === 2048, 'the bytes');

    const base = await adminFor(() => registry.list());
    const table = await meshlet('connections', '--admin', base);
    expect(table.stderr).toBe('');
    expect(table.status).toBe(0);
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    expect(cells(lines[0]!)).toEqual(['ID', 'DIRECTION', 'ROLE', 'PEER', 'LOCAL', 'REMOTE', 'IN', 'OUT', 'REQS', 'AGE', 'TLS']);
    const row1 = cells(lines[1]!);
    const row2 = cells(lines[2]!);
    expect(row1.slice(0, 9)).toEqual(['1', 'inbound', 'accepted', FRONTEND, `127.0.0.1:${port}`, `127.0.0.1:${clientA.localPort}`, '2.0KiB', '100B', '3']);
    expect(row1[9]).toMatch(/^\d+s$/);
    expect(row1[10]).toBe('TLSv1.3');
    expect(row2.slice(0, 9)).toEqual(['2', 'outbound', 'accepted', '-', `127.0.0.1:${port}`, `127.0.0.1:${clientB.localPort}`, '0B', '0B', '0']);
    expect(row2[10]).toBe('plaintext');
    // Columns line up: every row puts PEER at the header's offset.
    expect(lines[1]!.indexOf(FRONTEND)).toBe(lines[0]!.indexOf('PEER'));
    expect(lines[2]!.indexOf(' -  ') + 1).toBe(lines[0]!.indexOf('PEER'));

    const json = await meshlet('connections', '--admin', base, '--output', 'json');
    expect(json.status).toBe(0);
    const doc = JSON.parse(json.stdout) as { connections: Record<string, unknown>[] };
    expect(doc.connections).toHaveLength(2);
    expect(doc.connections[0]).toMatchObject({ id: 1, direction: 'inbound', role: 'accepted', peerIdentity: FRONTEND, bytesIn: 2048, bytesOut: 100, requests: 3, tlsVersion: 'TLSv1.3', localPort: port, remotePort: clientA.localPort });
  });

  it('says so when there are no connections', async () => {
    const base = await adminFor(() => []);
    const r = await meshlet('connections', '--admin', base);
    expect(r).toEqual({ status: 0, stdout: 'no live connections\n', stderr: '' });
  });

  it('fails with ADMIN_UNREACHABLE (exit 1) when nothing listens on the admin port', async () => {
    const probe = createServer();
    const port = await new Promise<number>((r) => probe.listen(0, '127.0.0.1', () => r((probe.address() as AddressInfo).port)));
    await new Promise<void>((r) => probe.close(() => r()));
    const r = await meshlet('connections', '--admin', `http://127.0.0.1:${port}`);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`meshlet connections: ADMIN_UNREACHABLE: cannot reach the sidecar admin port at http://127.0.0.1:${port}/connections: ECONNREFUSED`);
  });

  it.each([
    ['a body that is not JSON', 'hello', 'the body is not JSON'],
    ['JSON without a connection list', '{"ready":true}', 'no "connections" array in the JSON'],
    ['connections missing fields', '{"connections":[{"id":1}]}', 'connection 0 has no "direction"'],
  ])('fails with ADMIN_BAD_RESPONSE on %s', async (_what, body, problem) => {
    const port = await listen(createHttpServer((_req, res) => res.end(body)));
    const r = await meshlet('connections', '--admin', `http://127.0.0.1:${port}`);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`meshlet connections: ADMIN_BAD_RESPONSE: http://127.0.0.1:${port}/connections did not answer like a meshlet admin port: ${problem}\n`);
  });

  it('fails with ADMIN_BAD_RESPONSE on a non-200 answer', async () => {
    const port = await listen(createHttpServer((_req, res) => res.writeHead(404).end('{}')));
    const r = await meshlet('connections', '--admin', `http://127.0.0.1:${port}`);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('ADMIN_BAD_RESPONSE');
    expect(r.stderr).toContain('HTTP 404');
  });

  it('refuses a missing or malformed --admin with exit 2', async () => {
    expect((await meshlet('connections')).stderr).toContain('missing required flag --admin');
    const bad = await meshlet('connections', '--admin', 'not a url');
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('--admin must be a URL such as http://127.0.0.1:15020; got "not a url"');
    expect((await meshlet('connections', '--admin', 'http://127.0.0.1:1', '--output', 'yaml')).status).toBe(2);
  });

  it('has --help', async () => {
    const r = await meshlet('connections', '--help');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^Usage: meshlet connections --admin URL/);
  });
});
