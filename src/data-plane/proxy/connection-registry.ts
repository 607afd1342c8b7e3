import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { negotiatedGroup } from '../tls/key-exchange.ts';

/**
 * Live connections of the sidecar, for the admin `/connections` endpoint. Kept cheap on the
 * hot path: one object per connection created at accept/connect time; per request only the
 * `requests` counter moves (on both legs: the accepted connection the request came in on, and
 * the originated one — pooled HTTP/1.1 connection or HTTP/2 session — that carried it on);
 * byte counts are read from the socket when someone lists.
 */
export type ConnectionDirection = 'inbound' | 'outbound';
/** accepted: a caller (or the app) connected to us; originated: we connected to the next hop. */
export type ConnectionRole = 'accepted' | 'originated';

export interface ConnectionSnapshot {
  id: number;
  direction: ConnectionDirection;
  role: ConnectionRole;
  peerIdentity: string | null;
  localAddress: string;
  localPort: number;
  remoteAddress: string;
  remotePort: number;
  bytesIn: number;
  bytesOut: number;
  requests: number;
  openedAt: string;
  ageSeconds: number;
  tlsVersion: string | null;
  /**
   * true: the connection's TLS handshake resumed an earlier session (docs/tls.md "Session
   * resumption"; the peer's identity was still checked); false: a full handshake, or no TLS.
   */
  resumed: boolean;
  /**
   * The TLS 1.3 key exchange group of the connection's handshake, by its IANA name
   * (`X25519MLKEM768`, `X25519`, `secp256r1`, …; docs/tls.md "Key exchange"), on both sides and
   * on resumed connections too; null without TLS.
   */
  tlsGroup: string | null;
  /**
   * Outbound connections the sidecar passed through untouched (transparent interception of the
   * app's own TLS or non-HTTP TCP): what they carry (`tls` | `opaque`), where the app was going
   * (the original destination, `host:port`) and, for TLS, the server name the app asked for.
   * null on every other connection.
   */
  passthrough: { protocol: 'tls' | 'opaque'; destination: string; sni: string | null } | null;
}

export class TrackedConnection {
  readonly id: number;
  readonly direction: ConnectionDirection;
  readonly role: ConnectionRole;
  readonly socket: Socket;
  readonly openedAtMs: number;
  readonly localAddress: string;
  readonly localPort: number;
  readonly remoteAddress: string;
  readonly remotePort: number;
  peerIdentity: string | null = null;
  tlsVersion: string | null = null;
  /** Read once when tracked: every TLS connection is tracked after its handshake. */
  readonly resumed: boolean;
  /** Read once when tracked, as `resumed` (key-exchange.ts negotiatedGroup: a few µs on the server side, once per connection). */
  readonly tlsGroup: string | null;
  passthrough: ConnectionSnapshot['passthrough'] = null;
  requests = 0;
  /**
   * socket.bytesRead / bytesWritten when the previous request observed on this connection
   * ended (0 before the first: bytes a PERMISSIVE port peeked at before tracking belong to the
   * first request). A request's byte counts are the socket's counters minus these marks
   * (request-observation.ts), so every byte of an HTTP/1.1 connection — request heads included
   * — is counted for exactly one request, with no per-chunk work. On a TLSSocket the counters
   * are the decrypted bytes: TLS records and handshakes are not in them.
   */
  readMark = 0;
  writtenMark = 0;

  constructor(id: number, direction: ConnectionDirection, role: ConnectionRole, socket: Socket) {
    this.id = id;
    this.direction = direction;
    this.role = role;
    this.socket = socket;
    this.openedAtMs = Date.now();
    this.localAddress = socket.localAddress ?? '';
    this.localPort = socket.localPort ?? 0;
    this.remoteAddress = socket.remoteAddress ?? '';
    this.remotePort = socket.remotePort ?? 0;
    const tls = socket instanceof TLSSocket;
    this.resumed = tls && socket.isSessionReused() === true;
    this.tlsGroup = tls ? negotiatedGroup(socket) : null;
  }

  snapshot(now = Date.now()): ConnectionSnapshot {
    return {
      id: this.id,
      direction: this.direction,
      role: this.role,
      peerIdentity: this.peerIdentity,
      localAddress: this.localAddress,
      localPort: this.localPort,
      remoteAddress: this.remoteAddress,
      remotePort: this.remotePort,
      bytesIn: this.socket.bytesRead,
      bytesOut: this.socket.bytesWritten,
      requests: this.requests,
      openedAt: new Date(this.openedAtMs).toISOString(),
      ageSeconds: (now - this.openedAtMs) / 1000,
      tlsVersion: this.tlsVersion,
      resumed: this.resumed,
      tlsGroup: this.tlsGroup,
      passthrough: this.passthrough,
    };
  }
}

export class ConnectionRegistry {
  #nextId = 1;
  readonly #live = new Map<number, TrackedConnection>();
  readonly #onOpened: ((conn: TrackedConnection) => void) | undefined;

  /**
   * `onOpened` hears of every tracked connection (metrics), once the code that tracked it has
   * filled in its peer and TLS version: those are set right after track(), in the same tick.
   */
  constructor(onOpened?: (conn: TrackedConnection) => void) {
    this.#onOpened = onOpened;
  }

  /** Tracks `socket` until it closes. */
  track(direction: ConnectionDirection, role: ConnectionRole, socket: Socket): TrackedConnection {
    const conn = new TrackedConnection(this.#nextId++, direction, role, socket);
    this.#live.set(conn.id, conn);
    socket.once('close', () => this.#live.delete(conn.id));
    const onOpened = this.#onOpened;
    if (onOpened !== undefined) queueMicrotask(() => onOpened(conn));
    return conn;
  }

  get size(): number {
    return this.#live.size;
  }

  list(): ConnectionSnapshot[] {
    const now = Date.now();
    const out: ConnectionSnapshot[] = [];
    for (const conn of this.#live.values()) out.push(conn.snapshot(now));
    return out;
  }
}
