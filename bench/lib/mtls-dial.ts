import { readFileSync } from 'node:fs';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { ConnectTarget } from './topology.ts';

/**
 * Dialing the server side's listener directly, as a peer sidecar would: TLS 1.3 with the client
 * pod's SVID (direct: plain TCP). Used by the new-connection scenario (one handshake per
 * request) and the idle-connection scenario (connections held open).
 */
export type Dial = () => net.Socket;

/**
 * `resume`: offer the last TLS 1.3 session ticket the target gave this dialer, as a peer
 * sidecar does on its next connection to the same destination (meshlet's outbound side,
 * MESHLET_TLS_SESSION_RESUMPTION=on; nginx's proxy_ssl_session_reuse, its default). Without
 * it every connection is a full handshake, as a new peer's first one is.
 */
export function dialerFor(t: ConnectTarget, o: { resume?: boolean } = {}): Dial {
  if (!t.tls) return () => net.connect({ host: '127.0.0.1', port: t.port, noDelay: true });
  // One SecureContext for every dial: building one per connection (parsing PEM, filling an
  // X509 store) would make the client, not the server side, the bottleneck.
  const secureContext = tls.createSecureContext({ cert: readFileSync(t.tls.svid), key: readFileSync(t.tls.key), ca: readFileSync(t.tls.bundle), minVersion: 'TLSv1.3' });
  const options: tls.ConnectionOptions = {
    host: '127.0.0.1',
    port: t.port,
    secureContext,
    ALPNProtocols: ['http/1.1'],
    // SVIDs name a SPIFFE ID (URI SAN), not a host: the chain is verified against the bundle, the name is not.
    checkServerIdentity: () => undefined,
  };
  if (!o.resume) return () => tls.connect(options);
  let session: Buffer | undefined;
  const keep = (ticket: Buffer): void => {
    session = ticket;
  };
  return () => tls.connect({ ...options, session }).on('session', keep);
}
