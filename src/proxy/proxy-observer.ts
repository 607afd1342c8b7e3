import type { ConnectionDirection } from './connection-registry.ts';
import type { ProxyErrorCode } from './http/errors.ts';

/**
 * Hooks for metrics and logs (wired by the sidecar). Called only on the unusual paths —
 * refusals and failures — so the common request costs nothing here.
 */
export interface ProxyObserver {
  /** A request answered with an error from the catalog (or a connection refused by the parser). */
  refused?(direction: ConnectionDirection, code: ProxyErrorCode): void;
  /** A connection whose TLS handshake or client SVID verification failed. */
  handshakeFailed?(direction: ConnectionDirection, err: unknown): void;
}
