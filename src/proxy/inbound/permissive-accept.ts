import type * as net from 'node:net';
import type * as tls from 'node:tls';
import { detectTls } from '../../tls/detect.ts';
import type { ProxySettings } from '../config.ts';
import { detectH2c } from '../h2/detect-h2c.ts';
import type { InboundTls } from './inbound-proxy.ts';

export interface PermissiveOutcome {
  /** The mTLS handshake finished; the caller verifies the client's SVID (as on a STRICT port). */
  secure(socket: tls.TLSSocket): void;
  /** A plaintext caller (policy sees it as `unauthenticated`), speaking HTTP/1.x or h2c. */
  plaintext(socket: net.Socket, protocol: 'h2' | 'http1'): void;
  /** The caller started TLS and the handshake failed or timed out. */
  handshakeFailed(err: unknown): void;
}

/**
 * A connection to a PERMISSIVE port: the first bytes say whether the caller starts a TLS
 * handshake (src/tls/detect.ts); a TLS caller gets exactly the STRICT treatment (mTLS, client
 * SVID required and verified), anyone else is served in plaintext with no identity. A caller
 * that sends nothing within `requestHeadersMs` is plaintext (and then meets the HTTP head
 * timeout). A socket made by `acceptSocket` has no handshake timeout of its own (docs/tls.md),
 * so one is put on the raw socket until the handshake ends.
 */
export function acceptPermissive(raw: net.Socket, serverTls: InboundTls, alpn: string[], settings: ProxySettings, outcome: PermissiveOutcome): void {
  raw.on('error', () => raw.destroy());
  detectTls(raw, settings.timeouts.requestHeadersMs).then(
    (kind) => {
      if (raw.destroyed) return;
      if (kind === 'plaintext') {
        void detectH2c(raw, settings.timeouts.requestHeadersMs).then((p) => {
          if (!raw.destroyed) outcome.plaintext(raw, p === 'h2c' ? 'h2' : 'http1');
        });
        return;
      }
      const socket = serverTls.acceptSocket(raw, { ALPNProtocols: alpn });
      let secured = false;
      raw.setTimeout(settings.timeouts.tlsHandshakeMs, () => {
        if (secured) return;
        outcome.handshakeFailed(Object.assign(new Error(`no TLS handshake within ${settings.timeouts.tlsHandshakeMs} ms`), { code: 'ERR_TLS_HANDSHAKE_TIMEOUT' }));
        socket.destroy();
      });
      socket.on('error', (err) => {
        if (!secured) outcome.handshakeFailed(err);
        socket.destroy();
      });
      socket.once('secure', () => {
        secured = true;
        raw.setTimeout(0);
        outcome.secure(socket);
      });
    },
    () => raw.destroy(),
  );
}
