import type * as tls from 'node:tls';
import type { ProxySettings } from '../config.ts';
import type { ConnectionDirection, ConnectionRegistry } from '../connection-registry.ts';
import type { AuthorizationDecision } from '../request-authorizer.ts';
import type { OutboundLogTarget } from '../inbound/authorize.ts';
import { connectNextHop } from '../upstream/next-hop-connect.ts';
import { spliceSockets } from './byte-splice.ts';
import type { ConnectionAuthorizer } from './connection-authorizer.ts';
import { tcpRefusalCode, type TcpObserver, type TcpRefusalCode } from './tcp-refusals.ts';
import type { TcpSessionSet } from './tcp-session-set.ts';
import type { DecidedConnections } from './decided-connections.ts';

/**
 * Where a connection's decision is recorded (the sidecar's decision log,
 * src/data-plane/sidecar/decision-log.ts): one line per decided connection, like one per request.
 */
export interface ConnectionDecisionLog {
  connectionDecided(direction: ConnectionDirection, peer: string, port: number, decision: AuthorizationDecision, outbound?: OutboundLogTarget): void;
}

/** The authorizer as the sidecar hands it over, with its decision log when that is on. */
export interface DecisionLoggingConnectionAuthorizer extends ConnectionAuthorizer {
  readonly decisionLog?: ConnectionDecisionLog | undefined;
}

export interface AppSpliceContext {
  readonly authorizer: ConnectionAuthorizer;
  readonly appHost: string;
  readonly settings: ProxySettings;
  readonly registry: ConnectionRegistry;
  readonly observer?: TcpObserver;
  /** Where the drain finds the session (OpaqueTcpProxy); absent: the listener's own drain tracks the socket. */
  readonly sessions?: TcpSessionSet;
  /** Where an allowed connection waits to be decided again when the policy changes; absent: decided once. */
  readonly decided?: DecidedConnections;
}

// Dead peers on long-lived opaque connections (a database session idle for hours) are found
// by TCP keepalive, not by an idle timeout: an L4 proxy cannot know what idleness means.
const KEEPALIVE_DELAY_MS = 60_000;

/**
 * The inbound opaque step, for a verified mTLS caller: the policy decides once for the
 * CONNECTION (caller and app port — an opaque stream has no method or path), then the bytes
 * are spliced to the app on loopback both ways, half-close kept. On deny (or any failure) the
 * connection is closed before anything reaches the app. Used by `tcp` ports (opaque-inbound.ts)
 * and by HTTP ports for a meshed caller that carries the app's own TLS (no ALPN, a ClientHello
 * inside: inbound-proxy.ts).
 */
export function authorizeAndSplice(socket: tls.TLSSocket, peer: string, appPort: number, ctx: AppSpliceContext): void {
  // Until the app leg exists, an error (a reset by the caller) must not be unhandled.
  socket.on('error', () => socket.destroy());
  const refuse = (code: TcpRefusalCode): void => {
    ctx.observer?.refused?.('inbound', code);
    socket.destroy();
  };
  let decision: AuthorizationDecision;
  try {
    decision = ctx.authorizer.authorize({ peer, port: appPort });
  } catch {
    return refuse('MESHLET_INTERNAL');
  }
  const decisionLog = (ctx.authorizer as DecisionLoggingConnectionAuthorizer).decisionLog;
  decisionLog?.connectionDecided('inbound', peer, appPort, decision);
  if (decision.decision !== 'allow') return refuse('MESHLET_DENIED');
  const { authorizer, decided } = ctx;
  if (decided !== undefined && authorizer.reconsider !== undefined) {
    decided.add(socket, 'inbound', () => {
      const denied = authorizer.reconsider!({ peer, port: appPort });
      if (denied === null) return true;
      decisionLog?.connectionDecided('inbound', peer, appPort, denied);
      return false;
    });
  }

  socket.setKeepAlive(true, KEEPALIVE_DELAY_MS);
  const conn = ctx.registry.track('inbound', 'accepted', socket);
  conn.peerIdentity = peer;
  conn.tlsVersion = socket.getProtocol() ?? null;
  // Hold the caller's bytes until the app leg exists (they wait in the kernel and TLS buffers).
  socket.pause();
  const session = ctx.sessions?.open(socket);
  socket.once('close', () => {
    if (session !== undefined && session.length === 1) ctx.sessions!.close(session);
  });
  connectNextHop({ label: `app port ${appPort}`, host: ctx.appHost, port: appPort }, ctx.settings.timeouts, (err, app) => {
    if (err !== null || app === null) {
      if (session !== undefined) ctx.sessions!.close(session);
      return refuse(err === null ? 'MESHLET_INTERNAL' : tcpRefusalCode(err));
    }
    if (socket.destroyed) {
      app.destroy();
      if (session !== undefined) ctx.sessions!.close(session);
      return;
    }
    session?.push(app);
    app.setKeepAlive(true, KEEPALIVE_DELAY_MS);
    const appConn = ctx.registry.track('inbound', 'originated', app);
    appConn.peerIdentity = peer;
    spliceSockets(socket, app, () => {
      if (session !== undefined) ctx.sessions!.close(session);
    });
    socket.resume();
  }, { allowHalfOpen: true });
}
