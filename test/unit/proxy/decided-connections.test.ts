import * as net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DecidedConnections } from '../../../src/data-plane/proxy/tcp/decided-connections.ts';

/** DecidedConnections on real loopback sockets: what is closed, what is kept, what is forgotten. */
let server: net.Server;
let port: number;

beforeAll(async () => {
  server = net.createServer((s) => s.on('error', () => undefined));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as net.AddressInfo).port;
});
afterAll(() => server.close());

async function connected(): Promise<net.Socket> {
  const s = net.connect({ host: '127.0.0.1', port });
  s.on('error', () => undefined);
  await new Promise((r) => s.once('connect', r));
  return s;
}

describe('DecidedConnections', () => {
  it('closes the denied, keeps the allowed, and counts by direction', async () => {
    const set = new DecidedConnections();
    const [a, b, c] = await Promise.all([connected(), connected(), connected()]);
    set.add(a!, 'inbound', () => false);
    set.add(b!, 'outbound', () => false);
    set.add(c!, 'outbound', () => true);
    expect(set.reconsider()).toEqual({ inbound: 1, outbound: 1 });
    expect([a!.destroyed, b!.destroyed, c!.destroyed]).toEqual([true, true, false]);
    expect(set.size).toBe(1);
    c!.destroy();
  });

  it('fails closed: a decision that throws closes the connection', async () => {
    const set = new DecidedConnections();
    const s = await connected();
    set.add(s, 'outbound', () => {
      throw new Error('cannot decide');
    });
    expect(set.reconsider()).toEqual({ inbound: 0, outbound: 1 });
    expect(s.destroyed).toBe(true);
  });

  it('forgets a connection when it closes, and never tracks one already destroyed', async () => {
    const set = new DecidedConnections();
    const s = await connected();
    set.add(s, 'inbound', () => false);
    s.destroy();
    await new Promise((r) => s.once('close', r));
    expect(set.size).toBe(0);
    set.add(s, 'inbound', () => false);
    expect(set.size).toBe(0);
    expect(set.reconsider()).toEqual({ inbound: 0, outbound: 0 });
  });
});
