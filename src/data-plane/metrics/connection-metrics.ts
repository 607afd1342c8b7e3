import type { Socket } from 'node:net';
import type { Registry } from 'prom-client';
import { CounterVec, HistogramVec, type CounterSeries, type GaugeSeries, type HistogramSeries } from './series.ts';
import { CappedLabel, DEFAULT_LABEL_CAP, peerValue, type Direction } from './label-values.ts';

/** Connection lifetimes span health-check blips to day-long gRPC streams. */
export const CONNECTION_DURATION_BUCKETS: readonly number[] = [0.01, 0.1, 1, 10, 60, 300, 1800, 3600, 21600, 86400];

export const CONNECTION_LABELS = ['direction', 'peer', 'tls'] as const;

/** The "tls" label of a plaintext connection (a PERMISSIVE port, or the app's side of the sidecar). */
export const PLAINTEXT = 'plaintext';

class ConnectionSeries {
  readonly open: GaugeSeries;
  readonly opened: CounterSeries;
  readonly closed: CounterSeries;
  readonly read: CounterSeries;
  readonly written: CounterSeries;
  readonly duration: HistogramSeries;
  constructor(m: ConnectionMetrics, labels: Readonly<Record<string, string>>) {
    this.open = m.open.gauge(labels);
    this.opened = m.opened.series(labels);
    this.closed = m.closed.series(labels);
    this.read = m.readBytes.series(labels);
    this.written = m.writtenBytes.series(labels);
    this.duration = m.duration.series(labels);
  }
}

class LiveConnection {
  readonly socket: Socket;
  readonly series: ConnectionSeries;
  readonly openedAtMs: number;
  countedRead: number;
  countedWritten: number;
  constructor(socket: Socket, series: ConnectionSeries) {
    this.socket = socket;
    this.series = series;
    this.openedAtMs = performance.now();
    // Bytes that crossed before tracking began (a TLS handshake) are counted too.
    this.countedRead = 0;
    this.countedWritten = 0;
  }

  /** Adds what the socket moved since the last fold: the only place bytes are counted. */
  fold(): void {
    const r = this.socket.bytesRead;
    const w = this.socket.bytesWritten;
    this.series.read.value += r - this.countedRead;
    this.series.written.value += w - this.countedWritten;
    this.countedRead = r;
    this.countedWritten = w;
  }
}

export interface ConnectionMetricsOptions {
  /** Distinct peer identities kept before new ones become "other" (default 1000). */
  peerCap?: number;
}

/**
 * meshlet_tcp_* — open connections, opened/closed totals, bytes read/written and lifetimes.
 *
 * Bytes are read from the socket's own counters (socket.bytesRead / bytesWritten), never
 * counted per chunk. A long-lived connection (a gRPC stream, a database session) would stay
 * invisible until it closes, so a scrape also folds in what every live connection moved since
 * the previous fold; the close folds the rest. Each byte is added exactly once.
 */
export class ConnectionMetrics {
  readonly open: CounterVec;
  readonly opened: CounterVec;
  readonly closed: CounterVec;
  readonly readBytes: CounterVec;
  readonly writtenBytes: CounterVec;
  readonly duration: HistogramVec;
  readonly peers: CappedLabel;
  readonly #cache = new Map<string, ConnectionSeries>();
  readonly #live = new Set<LiveConnection>();

  constructor(registry: Registry, opts: ConnectionMetricsOptions = {}) {
    const labelNames = CONNECTION_LABELS;
    const collect = () => {
      for (const c of this.#live) c.fold();
    };
    this.open = new CounterVec({ type: 'gauge', name: 'meshlet_tcp_open_connections', help: 'Connections open now, by direction, peer identity and TLS version ("plaintext" without TLS).', labelNames, registry });
    this.opened = new CounterVec({ name: 'meshlet_tcp_connections_opened_total', help: 'Connections opened.', labelNames, registry });
    this.closed = new CounterVec({ name: 'meshlet_tcp_connections_closed_total', help: 'Connections closed.', labelNames, registry });
    this.readBytes = new CounterVec({ name: 'meshlet_tcp_read_bytes_total', help: 'Bytes read from connections, live connections included (folded in at every scrape).', labelNames, registry, collect });
    this.writtenBytes = new CounterVec({ name: 'meshlet_tcp_written_bytes_total', help: 'Bytes written to connections, live connections included (folded in at every scrape).', labelNames, registry, collect });
    this.duration = new HistogramVec({ name: 'meshlet_tcp_connection_duration_seconds', help: 'Lifetime of closed connections, in seconds.', labelNames, registry, buckets: CONNECTION_DURATION_BUCKETS });
    this.peers = new CappedLabel(opts.peerCap ?? DEFAULT_LABEL_CAP);
  }

  /**
   * Counts `socket` from now until it closes. `peer`: verified SPIFFE ID, null for a
   * plaintext caller, undefined when unknown; `tls`: the negotiated version
   * (tlsSocket.getProtocol()), or null for plaintext.
   */
  track(direction: Direction, peer: string | null | undefined, tls: string | null, socket: Socket): void {
    const peerLabel = this.peers.value(peerValue(peer));
    const tlsLabel = tls ?? PLAINTEXT;
    const key = `${direction}\n${tlsLabel}\n${peerLabel}`;
    let series = this.#cache.get(key);
    if (series === undefined) {
      series = new ConnectionSeries(this, Object.freeze({ direction, peer: peerLabel, tls: tlsLabel }));
      this.#cache.set(key, series);
    }
    const live = new LiveConnection(socket, series);
    series.open.value++;
    series.opened.value++;
    if (socket.destroyed) {
      this.#closed(live);
      return;
    }
    this.#live.add(live);
    socket.once('close', () => this.#closed(live));
  }

  /** Connections being tracked right now. */
  get liveCount(): number {
    return this.#live.size;
  }

  #closed(live: LiveConnection): void {
    live.fold();
    this.#live.delete(live);
    const s = live.series;
    s.open.value--;
    s.closed.value++;
    s.duration.observe((performance.now() - live.openedAtMs) / 1000);
  }
}
