import * as net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CatchAllListener } from '../../../src/data-plane/proxy/tcp/catch-all.ts';
import { waitFor } from '../proxy/support/mesh-fixture.ts';

describe('the catch-all listener for undeclared ports', () => {
  const refused: { direction: string; code: string }[] = [];
  const listener = new CatchAllListener({ port: 0, host: '127.0.0.1', observer: { refused: (direction, code) => refused.push({ direction, code }) } });
  beforeAll(() => listener.start());
  afterAll(() => listener.close());

  function connectAndSend(bytes: string): Promise<{ how: string; received: string }> {
    return new Promise((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port: listener.boundPort() });
      let how = 'close';
      let received = '';
      s.on('data', (d: Buffer) => (received += d.toString()));
      s.on('end', () => (how = 'end'));
      s.on('error', (err: Error & { code?: string }) => (how = `error:${err.code}`));
      s.on('close', () => resolve({ how, received }));
      s.on('connect', () => s.write(bytes));
    });
  }

  it('resets every connection (RST, not an orderly close) and counts it as MESHLET_UNDECLARED_PORT', async () => {
    const before = listener.refusedCount;
    const got = await connectAndSend('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
    expect(got).toEqual({ how: 'error:ECONNRESET', received: '' });
    await waitFor(() => listener.refusedCount === before + 1, 'the reset to be counted');
    expect(refused.at(-1)).toEqual({ direction: 'inbound', code: 'MESHLET_UNDECLARED_PORT' });
  });

  it('counts each connection once, however many arrive', async () => {
    const before = listener.refusedCount;
    const results = await Promise.all([1, 2, 3, 4, 5].map(() => connectAndSend('x')));
    for (const r of results) expect(r.how).toBe('error:ECONNRESET');
    await waitFor(() => listener.refusedCount === before + 5, 'five resets to be counted');
    expect(refused.filter((r) => r.code === 'MESHLET_UNDECLARED_PORT').length).toBe(listener.refusedCount);
  });

  it('stops listening on close()', async () => {
    const other = new CatchAllListener({ port: 0, host: '127.0.0.1' });
    await other.start();
    const port = other.boundPort();
    await other.close();
    expect(other.listening).toBe(false);
    const code = await new Promise<string>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.on('error', (err: Error & { code?: string }) => resolve(err.code ?? ''));
      s.on('connect', () => resolve('connected'));
    });
    expect(code).toBe('ECONNREFUSED');
  });
});
