import type { VerifiedPeer } from './peer-verifier.ts';

/**
 * TLS 1.3 session resumption between sidecars (docs/tls.md "Session resumption"): how long a
 * session may be resumed, and the outbound side's cache of sessions.
 */

/**
 * A session is resumable for at most this long after the full handshake that established it
 * (resumptions do not extend it), and never past either side's SVID. The inbound side's ticket
 * keys are replaced at this period too, and on every SVID or trust-bundle rotation.
 */
export const SESSION_LIFETIME_CAP_MS = 60 * 60 * 1000;

/** Destinations (host:port × expected identity) whose latest session the outbound side keeps. */
export const SESSION_CACHE_MAX_ENTRIES = 256;

/** One resumable session toward one destination, and what its full handshake verified. */
export interface CachedSession {
  /** The serialized session, as Node's 'session' event gave it (for tls.connect's `session`). */
  readonly session: Buffer;
  /** The server's chain as it was verified in the full handshake (leaf first, DER). */
  readonly chain: readonly Buffer[];
  /** The verified server identity. */
  readonly peer: VerifiedPeer;
  /** When the full handshake that verified `chain` happened (ms since epoch). */
  readonly establishedAt: number;
  /** Not offered at or after this (ms): the cap, the server chain's and our own SVID's end. */
  readonly expiresAt: number;
}

/**
 * The outbound side's sessions: one per key — the destination (host:port) AND the identity
 * expected there, so a session verified for one identity is never offered where another is
 * expected — least recently used dropped first beyond `maxEntries`, expired ones dropped when
 * met. Cleared whole on every rotation of our SVID or bundles (MeshTls does it): a session
 * carries the client certificate it was made with and was verified under the old bundles.
 */
export class ClientSessionCache {
  readonly #entries = new Map<string, CachedSession>();
  readonly #maxEntries: number;
  readonly #now: () => number;

  constructor(opts: { maxEntries?: number; now?: () => number } = {}) {
    this.#maxEntries = opts.maxEntries ?? SESSION_CACHE_MAX_ENTRIES;
    this.#now = opts.now ?? Date.now;
  }

  /** The key of a destination and the identity expected there. */
  static key(destination: { host: string; port: number }, expected: string): string {
    return `${destination.host}:${destination.port}\n${expected}`;
  }

  /** The session to offer for `key`, or undefined (none, or expired: then it is dropped). */
  get(key: string): CachedSession | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    this.#entries.delete(key);
    if (entry.expiresAt <= this.#now()) return undefined;
    this.#entries.set(key, entry); // most recently used last
    return entry;
  }

  /** Keeps `entry` as the session for `key` (the newest ticket replaces the previous one). */
  set(key: string, entry: CachedSession): void {
    this.#entries.delete(key);
    if (entry.expiresAt <= this.#now()) return;
    this.#entries.set(key, entry);
    while (this.#entries.size > this.#maxEntries) {
      const oldest = this.#entries.keys().next().value as string;
      this.#entries.delete(oldest);
    }
  }

  /** Drops every session whose verified server is one `isDropped` names (a revoked identity); returns how many. */
  dropPeers(isDropped: (spiffeId: string) => boolean): number {
    let dropped = 0;
    for (const [key, entry] of [...this.#entries]) {
      if (isDropped(entry.peer.spiffeId.id)) {
        this.#entries.delete(key);
        dropped++;
      }
    }
    return dropped;
  }

  delete(key: string): void {
    this.#entries.delete(key);
  }

  clear(): void {
    this.#entries.clear();
  }

  get size(): number {
    return this.#entries.size;
  }
}
