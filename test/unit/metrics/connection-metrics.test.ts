import { afterEach, describe, expect, it } from 'vitest';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { ConnectionMetrics } from '../../../src/data-plane/metrics/connection-metrics.ts';
import { scrape, valueOf } from './scrape.ts';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const PEER = 'spiffe://cluster.local/ns/web/sa/frontend';
const labels = { direction: 'inbound', peer: PEER, tls: 'plaintext' };

async function waitFor(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A loopback server whose accepted sockets the test gets, plus a connected client. */
async function pair(): Promise<{ server: Socket; client: Socket }> {
  const accepted: Socket[] = [];
  const srv: Server = createServer((s) => accepted.push(s));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => srv.close(() => r())));
  const client = createConnection((srv.address() as AddressInfo).port, '127.0.0.1');
  cleanups.push(() => void client.destroy());
  await once(client, 'connect');
  await waitFor(() => accepted.length === 1, 'the accept');
  const server = accepted[0]!;
  server.resume(); // a proxy consumes what it reads; an unread socket never sees the FIN
  cleanups.push(() => void server.destroy());
  return { server, client };
}

describe('connection metrics', () => {
  it('counts live connections bytes at scrape time and again at close, never twice', async () => {
    const registry = new Registry();
    const m = new ConnectionMetrics(registry);
    const { server, client } = await pair();
    m.track('inbound', PEER, null, server);
    let received = 0;
    client.on('data', (d: Buffer) => (received += d.length));

    client.write(Buffer.alloc(1000));
    server.write(Buffer.alloc(300));
    await waitFor(() => server.bytesRead === 1000 && received === 300, 'the first exchange');
    let samples = await scrape(registry);
    expect(valueOf(samples, 'meshlet_tcp_open_connections', labels)).toBe(1);
    expect(valueOf(samples, 'meshlet_tcp_connections_opened_total', labels)).toBe(1);
    expect(valueOf(samples, 'meshlet_tcp_read_bytes_total', labels)).toBe(1000);
    expect(valueOf(samples, 'meshlet_tcp_written_bytes_total', labels)).toBe(300);

    // A second scrape with no traffic adds nothing.
    samples = await scrape(registry);
    expect(valueOf(samples, 'meshlet_tcp_read_bytes_total', labels)).toBe(1000);

    client.write(Buffer.alloc(24));
    await waitFor(() => server.bytesRead === 1024, 'the second write');
    client.end();
    await waitFor(() => m.liveCount === 0, 'the close');
    samples = await scrape(registry);
    expect(valueOf(samples, 'meshlet_tcp_read_bytes_total', labels)).toBe(1024);
    expect(valueOf(samples, 'meshlet_tcp_written_bytes_total', labels)).toBe(300);
    expect(valueOf(samples, 'meshlet_tcp_open_connections', labels)).toBe(0);
    expect(valueOf(samples, 'meshlet_tcp_connections_closed_total', labels)).toBe(1);
    expect(valueOf(samples, 'meshlet_tcp_connection_duration_seconds_count', labels)).toBe(1);
    expect(valueOf(samples, 'meshlet_tcp_connection_duration_seconds_bucket', { ...labels, le: '+Inf' })).toBe(1);
  });

  it('labels by direction, peer and TLS version; the same labels share series', async () => {
    const registry = new Registry();
    const m = new ConnectionMetrics(registry);
    const a = await pair();
    const b = await pair();
    const c = await pair();
    m.track('inbound', PEER, 'TLSv1.3', a.server);
    m.track('inbound', PEER, 'TLSv1.3', b.server);
    m.track('outbound', undefined, null, c.server);
    const samples = await scrape(registry);
    expect(valueOf(samples, 'meshlet_tcp_open_connections', { direction: 'inbound', peer: PEER, tls: 'TLSv1.3' })).toBe(2);
    expect(valueOf(samples, 'meshlet_tcp_open_connections', { direction: 'outbound', peer: 'unknown', tls: 'plaintext' })).toBe(1);
    expect(m.open.size).toBe(2);
  });

  it('a socket already closed when tracked is counted as opened and closed', async () => {
    const registry = new Registry();
    const m = new ConnectionMetrics(registry);
    const { server } = await pair();
    server.destroy();
    m.track('inbound', null, null, server);
    const samples = await scrape(registry);
    const l = { direction: 'inbound', peer: 'unauthenticated', tls: 'plaintext' };
    expect(valueOf(samples, 'meshlet_tcp_connections_opened_total', l)).toBe(1);
    expect(valueOf(samples, 'meshlet_tcp_connections_closed_total', l)).toBe(1);
    expect(valueOf(samples, 'meshlet_tcp_open_connections', l)).toBe(0);
    expect(m.liveCount).toBe(0);
  });

  it('caps distinct peers per family', async () => {
    const registry = new Registry();
    const m = new ConnectionMetrics(registry, { peerCap: 1 });
    const a = await pair();
    const b = await pair();
    m.track('inbound', PEER, 'TLSv1.3', a.server);
    m.track('inbound', 'spiffe://cluster.local/ns/x/sa/y', 'TLSv1.3', b.server);
    const samples = await scrape(registry);
    expect(valueOf(samples, 'meshlet_tcp_open_connections', { direction: 'inbound', peer: 'other', tls: 'TLSv1.3' })).toBe(1);
  });
});
