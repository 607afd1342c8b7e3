import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli } from '../../unit/injector/cli-support.ts';

/** `meshlet wait-ready` against a real HTTP server on 127.0.0.1 standing in for the sidecar's admin port. */
const servers: Server[] = [];

async function readinessServer(answer: (attempt: number) => number): Promise<{ url: string; attempts: () => number }> {
  let attempts = 0;
  const server = createServer((req, res) => {
    attempts += 1;
    res.statusCode = req.url === '/ready' ? answer(attempts) : 404;
    res.end();
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/ready`, attempts: () => attempts };
}

afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

describe('meshlet wait-ready', () => {
  it('returns 0 once /ready answers 200, after polling through 503s', async () => {
    const { url, attempts } = await readinessServer((n) => (n < 4 ? 503 : 200));
    const { code, stderr } = await runCli(['wait-ready', '--url', url, '--interval', '20ms', '--timeout', '60s']);
    expect(code).toBe(0);
    expect(attempts()).toBe(4);
    expect(stderr).toContain('is ready');
  });

  it('returns 1 with the last answer when the sidecar never becomes ready', async () => {
    const { url } = await readinessServer(() => 503);
    const { code, stderr } = await runCli(['wait-ready', '--url', url, '--interval', '20ms', '--timeout', '3s']);
    expect(code).toBe(1);
    expect(stderr).toContain('WAIT_READY_TIMEOUT');
    expect(stderr).toContain('last: HTTP 503');
  });

  it('keeps trying while nothing listens yet (connection refused), then gives up with the error', async () => {
    const { url } = await readinessServer(() => 200);
    await new Promise((r) => servers.pop()!.close(r));
    const { code, stderr } = await runCli(['wait-ready', '--url', url, '--interval', '20ms', '--timeout', '2s']);
    expect(code).toBe(1);
    expect(stderr).toMatch(/last: .*ECONNREFUSED/);
  });

  it('refuses bad flags with exit 2', async () => {
    expect((await runCli(['wait-ready', '--timeout', '10'])).code).toBe(2);
    expect((await runCli(['wait-ready', '--url', 'https://x/ready'])).code).toBe(2);
  });
});
