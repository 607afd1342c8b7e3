import type * as net from 'node:net';
import type { ConnectionDirection } from '../connection-registry.ts';

/**
 * The open connections whose policy decision was made once, when they opened: opaque TCP and
 * the caller's own TLS inbound; the app's own TLS and non-HTTP TCP outbound (docs/policy.md
 * "Reload"). HTTP needs none of this — every request is decided with the policy in force — but
 * a connection decided once would otherwise outlive a policy that now forbids it, for as long
 * as the app keeps it open (a database session: days). On every applied policy the sidecar
 * calls `reconsider()`: each connection is decided again, and the ones now denied are closed.
 *
 * Cost: one Set entry and one closure per such connection, nothing per byte; a reconsideration
 * is one decision per open connection, once per applied policy.
 */
export interface ConnectionsClosed {
  readonly inbound: number;
  readonly outbound: number;
}

interface Entry {
  readonly socket: net.Socket;
  readonly direction: ConnectionDirection;
  /** The decision again, against the policy in force now: true keeps the connection. A denial observes itself (counted, logged). */
  readonly stillAllowed: () => boolean;
}

export class DecidedConnections {
  readonly #live = new Set<Entry>();

  get size(): number {
    return this.#live.size;
  }

  /** Tracks `socket` (the side the caller or the app holds) until it closes. */
  add(socket: net.Socket, direction: ConnectionDirection, stillAllowed: () => boolean): void {
    if (socket.destroyed) return;
    const entry: Entry = { socket, direction, stillAllowed };
    this.#live.add(entry);
    socket.once('close', () => this.#live.delete(entry));
  }

  /**
   * Decides every tracked connection again and destroys the ones now denied (the splice then
   * cuts the other leg: a stream cut on one side looks cut on the other). Fail closed: a
   * decision that throws denies.
   */
  reconsider(): ConnectionsClosed {
    let inbound = 0;
    let outbound = 0;
    for (const entry of [...this.#live]) {
      let keep: boolean;
      try {
        keep = entry.stillAllowed();
      } catch {
        keep = false;
      }
      if (keep) continue;
      this.#live.delete(entry);
      entry.socket.destroy();
      if (entry.direction === 'inbound') inbound++;
      else outbound++;
    }
    return { inbound, outbound };
  }
}
