import type * as http from 'node:http';

/**
 * Graceful drain of one listening HTTP server: stop accepting, close keep-alive connections
 * as soon as they are idle, let in-flight requests finish (their responses carry
 * `connection: close`, set by the proxy while draining), and after `timeoutMs` close whatever
 * is left. Resolves with the number of connections that had to be cut.
 */
export function drainServer(server: http.Server, timeoutMs: number, openConnections: () => number): Promise<number> {
  return new Promise((resolve) => {
    if (!server.listening) {
      server.closeAllConnections();
      resolve(0);
      return;
    }
    let done = false;
    const finish = (forced: number): void => {
      if (done) return;
      done = true;
      clearInterval(sweep);
      clearTimeout(deadline);
      resolve(forced);
    };
    server.close(() => finish(0));
    // A connection that finishes its last response becomes idle; node does not close it on
    // its own after close(), so sweep until none is left. Coarse on purpose: only while draining.
    const sweep = setInterval(() => server.closeIdleConnections(), 50);
    server.closeIdleConnections();
    const deadline = setTimeout(() => {
      const forced = openConnections();
      server.closeAllConnections();
      finish(forced);
    }, timeoutMs);
  });
}
