import type * as net from 'node:net';
import type * as tls from 'node:tls';
import { detectTls } from '../../tls/detect.ts';
import { detectH2c } from '../h2/detect-h2c.ts';

export interface PermissiveHandoff {
  /**
   * The STRICT port's own tls.Server, never listening itself: a TLS caller is handed to it
   * and gets exactly the STRICT treatment — its handshake timeout, its 'secureConnection'
   * (client SVID verified there), its rotation of the serving certificate.
   */
  readonly tls: tls.Server;
  /** A plaintext caller (policy sees it as `unauthenticated`), speaking HTTP/1.x or h2c. */
  plaintext(socket: net.Socket, protocol: 'h2' | 'http1'): void;
  /** The caller's first bytes arrived: the accept deadline (connection guard) is over. */
  detected(): void;
}

/**
 * A connection to a PERMISSIVE port: the first bytes say whether the caller starts a TLS
 * handshake (src/data-plane/tls/detect.ts) or speaks plaintext (then HTTP/1.x or h2c: h2/detect-h2c.ts).
 * The bytes are put back, so whoever reads next sees the stream from its first byte.
 *
 * TLS callers go through `tlsServer.emit('connection', raw)`, node's own way of handing an
 * accepted socket to a server, rather than a TLSSocket made here: a server-side TLSSocket made
 * by hand never clears `secureConnecting`, and node:http2 waits for 'secureConnect' on such a
 * socket forever — HTTP/2 over mTLS (gRPC) to a PERMISSIVE port hung while HTTP/1.1 worked.
 *
 * A caller that sends nothing is never `detected`: the listener's deadline closes it.
 */
export function acceptPermissive(raw: net.Socket, detectTimeoutMs: number, handoff: PermissiveHandoff): void {
  raw.on('error', () => raw.destroy());
  detectTls(raw, detectTimeoutMs).then(
    (kind) => {
      if (raw.destroyed) return;
      if (kind === 'tls') {
        handoff.detected();
        handoff.tls.emit('connection', raw);
        return;
      }
      void detectH2c(raw, detectTimeoutMs).then((p) => {
        if (raw.destroyed) return;
        // Detection also ends on its own timeout; only bytes end the accept deadline.
        if (raw.bytesRead > 0) handoff.detected();
        handoff.plaintext(raw, p === 'h2c' ? 'h2' : 'http1');
      });
    },
    () => raw.destroy(),
  );
}
