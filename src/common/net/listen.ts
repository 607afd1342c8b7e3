import type * as net from 'node:net';

/**
 * Binds a server and resolves once it listens, or rejects with the bind error (EADDRINUSE,
 * EACCES…) instead of leaving it to an unhandled 'error' event. Every listener of the sidecar
 * starts through here.
 */
export function listenOn(server: net.Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
