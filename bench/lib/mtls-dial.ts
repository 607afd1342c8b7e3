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

export function dialerFor(t: ConnectTarget): Dial {
  if (!t.tls) return () => net.connect({ host: '127.0.0.1', port: t.port, noDelay: true });
  // One SecureContext for every dial: building one per connection (parsing PEM, filling an
  // X509 store) would make the client, not the server side, the bottleneck.
  const secureContext = tls.createSecureContext({ cert: readFileSync(t.tls.svid), key: readFileSync(t.tls.key), ca: readFileSync(t.tls.bundle), minVersion: 'TLSv1.3' });
  const options: tls.ConnectionOptions = {
    host: '127.0.0.1',
    port: t.port,
    secureContext,
    ALPNProtocols: ['http/1.1'],
    // No session resumption: every connection is a full handshake, as a new peer's would be.
    session: undefined,
    // SVIDs name a SPIFFE ID (URI SAN), not a host: the chain is verified against the bundle, the name is not.
    checkServerIdentity: () => undefined,
  };
  return () => tls.connect(options);
}
