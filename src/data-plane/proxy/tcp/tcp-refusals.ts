import type { ConnectionDirection } from '../connection-registry.ts';
import type { ProxyError, ProxyErrorCode } from '../http/errors.ts';

/**
 * Why an opaque TCP connection was refused or cut. An opaque stream has no response to carry
 * a status or an `x-meshlet-error` header, so the only signals are the closed connection and
 * the counter behind the observer; the codes are the HTTP catalog's where the cause is the
 * same (documented in docs/proxy-tcp.md), plus the one that exists only at L4.
 */
export const TCP_REFUSAL_CATALOG = {
  MESHLET_DENIED: 'inbound: the policy of the port does not allow this caller; outbound: the client policy does not allow this destination; the connection is closed before any byte reaches the app or the destination',
  MESHLET_UNDECLARED_PORT: 'inbound TCP to a port the pod does not declare (the catch-all listener): reset, never forwarded',
  MESHLET_UPSTREAM_CONNECT_FAILED: 'the next hop (the app, or the peer sidecar) refused the connection',
  MESHLET_UPSTREAM_CONNECT_TIMEOUT: 'the next hop did not accept a connection within timeouts.connectMs',
  MESHLET_UPSTREAM_TLS_FAILED: 'the mTLS handshake with the peer sidecar failed',
  MESHLET_UPSTREAM_TLS_TIMEOUT: 'the mTLS handshake did not finish within timeouts.tlsHandshakeMs',
  MESHLET_UPSTREAM_IDENTITY_REJECTED: 'the peer sidecar presented an identity the destination does not expect',
  MESHLET_UNKNOWN_DESTINATION: "outbound, transparent: discovery says the original destination is in the cluster but cannot say whether it is meshed (unknown, or discovery unavailable): refused rather than risk plaintext to a meshed pod",
  MESHLET_PASSTHROUGH_DENIED: "outbound: the app's own TLS or non-HTTP TCP to its original destination, refused because MESHLET_OUTBOUND_PASSTHROUGH is deny",
  MESHLET_INTERNAL: 'an unexpected failure inside the sidecar (e.g. the authorizer threw)',
} as const satisfies Partial<Record<ProxyErrorCode, string>> & Record<string, string>;

export type TcpRefusalCode = keyof typeof TCP_REFUSAL_CATALOG;

/**
 * Hooks for metrics and logs, called only on refusals and failures. A metrics object whose
 * `refused(direction, code: string)` takes any code (src/data-plane/metrics/refusal-metrics.ts) serves
 * both this and the HTTP ProxyObserver.
 */
export interface TcpObserver {
  /**
   * Called with a TcpRefusalCode. Typed with the HTTP catalog's codes too, so the sidecar's one
   * observer (a ProxyObserver whose `refused` takes any code) can be handed over as it is.
   */
  refused?(direction: ConnectionDirection, code: TcpRefusalCode | ProxyErrorCode): void;
  /** A connection whose TLS handshake or peer SVID verification failed (inbound a caller's, outbound the peer sidecar's). */
  handshakeFailed?(direction: ConnectionDirection, err: unknown): void;
}

/** The refusal code for a failed next-hop connection (connectNextHop names it; the codes are shared). */
export function tcpRefusalCode(err: ProxyError): TcpRefusalCode {
  return Object.hasOwn(TCP_REFUSAL_CATALOG, err.code) ? (err.code as TcpRefusalCode) : 'MESHLET_INTERNAL';
}
