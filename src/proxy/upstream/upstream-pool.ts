import * as net from 'node:net';
import * as tls from 'node:tls';
import { Pool, type buildConnector } from 'undici';
import { ProxyError } from '../http/errors.ts';
import { MeshletError } from '../../errors/meshlet-error.ts';
import type { ProxySettings } from '../config.ts';
import type { ConnectionDirection, ConnectionRegistry } from '../connection-registry.ts';

/**
 * A keep-alive pool toward one next hop — the local app (plain TCP on loopback), a plaintext
 * destination outside the mesh, or a peer sidecar (mTLS) — as an undici Pool driven through
 * its dispatch API (see forward-request.ts for why).
 *
 * This file decides how a NEW connection is made: TCP_NODELAY always (a head and a body
 * written as two segments must never wait on Nagle + delayed ACK), one timer covering connect
 * then handshake (per connection, never per request), and a failure named by the phase it
 * happened in, as the ProxyError the client will see: refused, timed out, handshake failed,
 * or the peer's SVID rejected.
 */
export interface UpstreamTarget {
  /** Names the hop in error messages ("app port 8080", "peer sidecar … for orders:80 (spiffe://…)"). */
  readonly label: string;
  readonly host: string;
  readonly port: number;
  /** Present: originate mTLS with these options (ClientTls.connectOptions; asked per new connection, so rotation applies). */
  readonly tlsOptions?: () => tls.ConnectionOptions;
}

export interface UpstreamPoolOptions {
  readonly settings: ProxySettings;
  readonly registry: ConnectionRegistry;
  readonly direction: ConnectionDirection;
}

export function createUpstreamPool(target: UpstreamTarget, opts: UpstreamPoolOptions): Pool {
  const { settings } = opts;
  const origin = `http://${net.isIPv6(target.host) ? `[${target.host}]` : target.host}:${target.port}`;
  return new Pool(origin, {
    connections: settings.limits.maxConnectionsPerUpstream,
    // One request at a time per connection: HTTP/1.1 pipelining buys little here and a
    // failure mid-pipeline would fail requests the app never saw answered.
    pipelining: 1,
    // undici also honours the next hop's `Keep-Alive: timeout=` hint (minus a margin), so a
    // pooled connection is not reused just as the app closes it.
    keepAliveTimeout: settings.timeouts.idleMs,
    keepAliveMaxTimeout: settings.timeouts.idleMs,
    // Responses may stream as long as they need (a long poll, a download); the proxy's
    // timeouts are about connecting and about the client's request head.
    headersTimeout: 0,
    bodyTimeout: 0,
    maxHeaderSize: settings.limits.maxHeaderBytes * 4,
    connect: connector(target, opts),
  });
}

function connector(target: UpstreamTarget, { settings, registry, direction }: UpstreamPoolOptions): buildConnector.connector {
  const where = `${target.label} at ${target.host}:${target.port}`;
  return (_options, callback) => {
    let phase: 'connect' | 'handshake' = 'connect';
    let settled = false;
    const socket: net.Socket = target.tlsOptions
      ? tls.connect({ ...target.tlsOptions(), host: target.host, port: target.port })
      : net.connect({ host: target.host, port: target.port, noDelay: true });
    socket.setNoDelay(true);
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      callback(upstreamConnectFailure(err, phase, where), null);
    };
    let timer = setTimeout(
      () => fail(new ProxyError('MESHLET_UPSTREAM_CONNECT_TIMEOUT', `no connection to ${where} within ${settings.timeouts.connectMs} ms`)),
      settings.timeouts.connectMs,
    );
    const established = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      // From here on undici owns the socket and its errors.
      socket.off('error', fail);
      const conn = registry.track(direction, 'originated', socket);
      if (target.tlsOptions) conn.tlsVersion = (socket as tls.TLSSocket).getProtocol() ?? null;
      callback(null, socket);
    };
    socket.once('connect', () => {
      if (!target.tlsOptions) return established();
      phase = 'handshake';
      clearTimeout(timer);
      timer = setTimeout(
        () => fail(new ProxyError('MESHLET_UPSTREAM_TLS_TIMEOUT', `no mTLS handshake with ${where} within ${settings.timeouts.tlsHandshakeMs} ms`)),
        settings.timeouts.tlsHandshakeMs,
      );
    });
    if (target.tlsOptions) socket.once('secureConnect', established);
    socket.on('error', fail);
  };
}

/** Names a failure to establish a connection, by the phase it happened in. */
function upstreamConnectFailure(err: Error, phase: 'connect' | 'handshake', where: string): ProxyError {
  if (err instanceof ProxyError) return err;
  const code = (err as { code?: unknown }).code;
  if (phase === 'connect') {
    return new ProxyError('MESHLET_UPSTREAM_CONNECT_FAILED', `cannot connect to ${where}: ${String(code ?? err.message)}`, { cause: err });
  }
  // The TLS layer reports a rejected peer SVID as a coded MeshletError (TLS_PEER_*, SVID_*);
  // anything else (an alert from the peer, a protocol mismatch) is a plain handshake failure.
  if (err instanceof MeshletError) {
    return new ProxyError('MESHLET_UPSTREAM_IDENTITY_REJECTED', `peer at ${where} rejected: ${err.code}: ${err.message}`, { cause: err });
  }
  return new ProxyError('MESHLET_UPSTREAM_TLS_FAILED', `mTLS handshake with ${where} failed: ${String(code ?? err.message)}`, { cause: err });
}
