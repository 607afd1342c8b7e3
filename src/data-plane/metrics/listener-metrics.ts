import { Counter, Gauge, type Registry } from 'prom-client';
import { CONNECTION_REFUSALS, type ConnectionGuard, type ConnectionRefusal, type ListenerName, type ListenerObserver } from '../../common/net/connection-guard.ts';

/**
 * meshlet_listener_* — what the connection guards (src/common/net/connection-guard.ts) do on every
 * listener of a process (sidecar, identity service, injector): connections closed at accept
 * because the listener was full (`limit`) or because they did not finish their TLS handshake,
 * request head or first bytes in time (`setup_timeout`); the cap of each listener; and how
 * many connections are open on it, handshakes in progress included (meshlet_tcp_* only sees
 * connections once they are set up). A rising `setup_timeout` or open connections near the
 * limit is what a slowloris-style attack looks like.
 */
export class ListenerMetrics implements ListenerObserver {
  readonly refusals: Counter<'listener' | 'reason'>;
  readonly limit: Gauge<'listener'>;
  readonly open: Gauge<'listener'>;
  readonly #guards = new Map<ListenerName, ConnectionGuard[]>();

  constructor(registry: Registry) {
    this.refusals = new Counter({
      name: 'meshlet_listener_refused_connections_total',
      help: 'Connections a listener closed itself before serving them, by listener and reason: limit (the listener was at its connection cap; closed at accept) or setup_timeout (no TLS handshake, request head or first bytes within the configured time).',
      labelNames: ['listener', 'reason'],
      registers: [registry],
    });
    const guards = this.#guards;
    this.limit = new Gauge({
      name: 'meshlet_listener_max_connections',
      help: 'Connections each listener accepts at most: its per-port cap (after any lowering to fit the open-files limit) times its ports.',
      labelNames: ['listener'],
      registers: [registry],
      collect() {
        for (const [listener, list] of guards) this.set({ listener }, list.reduce((sum, g) => sum + g.maxConnections * g.ports, 0));
      },
    });
    this.open = new Gauge({
      name: 'meshlet_listener_open_connections',
      help: 'Connections open on each listener (all its ports), handshakes in progress included.',
      labelNames: ['listener'],
      registers: [registry],
      async collect() {
        for (const [listener, list] of guards) {
          const counts = await Promise.all(list.map((g) => g.openConnections()));
          this.set({ listener }, counts.reduce((a, b) => a + b, 0));
        }
      },
    });
  }

  connectionRefused(listener: ListenerName, reason: ConnectionRefusal): void {
    this.refusals.inc({ listener, reason });
  }

  guarding(guard: ConnectionGuard): void {
    const list = this.#guards.get(guard.listener) ?? [];
    list.push(guard);
    this.#guards.set(guard.listener, list);
    // Series start at 0 for the listeners this process has, so rate() and alerts see them.
    for (const reason of CONNECTION_REFUSALS) this.refusals.inc({ listener: guard.listener, reason }, 0);
    this.open.set({ listener: guard.listener }, 0);
  }
}
