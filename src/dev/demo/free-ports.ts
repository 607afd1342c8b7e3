import { createServer } from 'node:net';

/**
 * Ports that were free a moment ago, for processes whose configuration needs a concrete
 * port (the sidecar's env contract has no "0"). Binding and releasing leaves a small race;
 * the kernel does not hand the same ephemeral port out again at once, which is enough here.
 */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<import('node:net').Server>((resolve, reject) => {
      const s = createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => resolve(s));
    })),
  );
  const ports = servers.map((s) => (s.address() as import('node:net').AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}
