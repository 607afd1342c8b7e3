import type * as net from 'node:net';

/**
 * The live sessions of one opaque TCP proxy (a session = the accepted socket, plus the next
 * hop's once connected), for drain: stop accepting, wait for the sessions to end on their own
 * up to a deadline, then cut what is left and say how many.
 */
export class TcpSessionSet {
  readonly #live = new Set<net.Socket[]>();
  #onEmpty: (() => void) | null = null;

  get size(): number {
    return this.#live.size;
  }

  /** Starts a session with its accepted socket; add the next hop's socket to the returned array. */
  open(accepted: net.Socket): net.Socket[] {
    const session = [accepted];
    this.#live.add(session);
    return session;
  }

  close(session: net.Socket[]): void {
    if (!this.#live.delete(session)) return;
    if (this.#live.size === 0) this.#onEmpty?.();
  }

  /** Resolves with 0 once every session ended, or destroys the rest after `timeoutMs` and resolves with their number. */
  drain(timeoutMs: number): Promise<number> {
    if (this.#live.size === 0) return Promise.resolve(0);
    return new Promise((resolve) => {
      const deadline = setTimeout(() => {
        this.#onEmpty = null;
        const cut = this.#live.size;
        for (const session of this.#live) for (const s of session) s.destroy();
        this.#live.clear();
        resolve(cut);
      }, timeoutMs);
      this.#onEmpty = () => {
        clearTimeout(deadline);
        this.#onEmpty = null;
        resolve(0);
      };
    });
  }
}
