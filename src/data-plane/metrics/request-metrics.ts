import type { Registry } from 'prom-client';
import { CounterVec, HistogramVec, type CounterSeries, type HistogramSeries } from './series.ts';
import {
  AUTHZ_RESULTS,
  CappedLabel,
  DEFAULT_LABEL_CAP,
  METHOD_VALUES,
  grpcStatusValue,
  peerValue,
  routeValue,
  statusClassValue,
  type AuthzResult,
  type Direction,
} from './label-values.ts';

/**
 * Request latency buckets, in seconds. A hop through a sidecar on loopback takes about
 * 100–300 µs (npm run bench), so the buckets start at 100 µs to resolve sub-millisecond
 * latencies; they end at 10 s, past which a request is "slow" whatever its exact time.
 */
export const REQUEST_DURATION_BUCKETS: readonly number[] = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

export const REQUEST_LABELS = ['direction', 'peer', 'route', 'method', 'status_class', 'grpc_status', 'authz'] as const;

/** The four series one request moves, bound once per label set. Hold it; observe() with it. */
export class RequestSeries {
  readonly requests: CounterSeries;
  readonly duration: HistogramSeries;
  readonly requestBytes: CounterSeries;
  readonly responseBytes: CounterSeries;

  constructor(requests: CounterSeries, duration: HistogramSeries, requestBytes: CounterSeries, responseBytes: CounterSeries) {
    this.requests = requests;
    this.duration = duration;
    this.requestBytes = requestBytes;
    this.responseBytes = responseBytes;
  }
}

export interface RequestMetricsOptions {
  /** Distinct peer identities kept before new ones become "other" (default 1000). */
  peerCap?: number;
  /** Distinct route names kept before new ones become "other" (default 1000). */
  routeCap?: number;
}

const METHOD_INDEX = new Map<string, number>(METHOD_VALUES.map((m, i) => [m, i]));
const AUTHZ_INDEX = new Map<string, number>(AUTHZ_RESULTS.map((a, i) => [a, i]));

/**
 * meshlet_requests_total, meshlet_request_duration_seconds, meshlet_request_bytes_total,
 * meshlet_response_bytes_total — one family, since one request moves all four.
 *
 * Series are cached per (peer, route) in nested Maps keyed by the label strings themselves
 * (V8 caches a string's hash, so a lookup with the same string object costs no hashing), then
 * by a small integer that packs the enum labels. A steady stream of requests therefore costs
 * three Map lookups and no allocation.
 */
export class RequestMetrics {
  readonly requests: CounterVec;
  readonly duration: HistogramVec;
  readonly requestBytes: CounterVec;
  readonly responseBytes: CounterVec;
  readonly peers: CappedLabel;
  readonly routes: CappedLabel;
  readonly #cache = new Map<string, Map<string, Map<number, RequestSeries>>>();

  constructor(registry: Registry, opts: RequestMetricsOptions = {}) {
    const labelNames = REQUEST_LABELS;
    this.requests = new CounterVec({ name: 'meshlet_requests_total', help: 'HTTP and gRPC requests the sidecar proxied or answered itself, by direction, peer identity, route, method, status and authorization result.', labelNames, registry });
    this.duration = new HistogramVec({ name: 'meshlet_request_duration_seconds', help: 'Time from the request head arriving at the sidecar to the end of the response, in seconds.', labelNames, registry, buckets: REQUEST_DURATION_BUCKETS });
    this.requestBytes = new CounterVec({ name: 'meshlet_request_bytes_total', help: 'HTTP/1.1: bytes read on the client connection for the request, head and body as they crossed it (chunked framing included, TLS records not); HTTP/2 streams count 0. Same labels as meshlet_requests_total.', labelNames, registry });
    this.responseBytes = new CounterVec({ name: 'meshlet_response_bytes_total', help: 'HTTP/1.1: bytes written on the client connection for the response, head and body (chunked framing included, TLS records not); HTTP/2 streams count 0. Same labels as meshlet_requests_total.', labelNames, registry });
    this.peers = new CappedLabel(opts.peerCap ?? DEFAULT_LABEL_CAP);
    this.routes = new CappedLabel(opts.routeCap ?? DEFAULT_LABEL_CAP);
  }

  /**
   * The series for one label set, created on first use. `peer`: verified SPIFFE ID, null for
   * a plaintext caller, undefined when unknown. `route`: policy route name, null when a
   * default decided, undefined when no policy ran. `grpcStatus`: null for plain HTTP.
   */
  series(
    direction: Direction,
    peer: string | null | undefined,
    route: string | null | undefined,
    method: string,
    status: number,
    grpcStatus: number | null,
    authz: AuthzResult,
  ): RequestSeries {
    const peerLabel = this.peers.value(peerValue(peer));
    const routeLabel = this.routes.value(routeValue(route));
    let byRoute = this.#cache.get(peerLabel);
    if (byRoute === undefined) this.#cache.set(peerLabel, (byRoute = new Map()));
    let byKey = byRoute.get(routeLabel);
    if (byKey === undefined) byRoute.set(routeLabel, (byKey = new Map()));
    const methodIdx = METHOD_INDEX.get(method) ?? METHOD_VALUES.length - 1;
    const statusIdx = status >= 100 && status < 600 ? Math.floor(status / 100) : 0;
    const grpcIdx = grpcStatus !== null && Number.isInteger(grpcStatus) && grpcStatus >= 0 && grpcStatus <= 16 ? grpcStatus : 17;
    const authzIdx = AUTHZ_INDEX.get(authz) ?? 3;
    // direction(2) x authz(4) x method(10) x status class(6) x grpc(18): a unique small integer.
    const key = (((grpcIdx * 6 + statusIdx) * 10 + methodIdx) * 4 + authzIdx) * 2 + (direction === 'inbound' ? 0 : 1);
    let s = byKey.get(key);
    if (s === undefined) {
      const labels = Object.freeze({
        direction,
        peer: peerLabel,
        route: routeLabel,
        method: METHOD_VALUES[methodIdx]!,
        status_class: statusClassValue(status),
        grpc_status: grpcStatusValue(grpcStatus),
        authz: AUTHZ_RESULTS[authzIdx]!,
      });
      s = new RequestSeries(this.requests.series(labels), this.duration.series(labels), this.requestBytes.series(labels), this.responseBytes.series(labels));
      byKey.set(key, s);
    }
    return s;
  }

  /**
   * Makes one inbound label set now, at 0 (a policy route, when the policy loads). Nothing when
   * the peer or route cap is full: made-ahead series never push real traffic into "other".
   */
  prepare(peer: string | null, route: string, method: string, status: number, grpcStatus: number | null, authz: AuthzResult): void {
    if (!this.peers.tryAdmit(peerValue(peer)) || !this.routes.tryAdmit(route)) return;
    this.series('inbound', peer, route, method, status, grpcStatus, authz);
  }

  /** One finished request: the hot path (no allocation, no hashing). */
  observe(series: RequestSeries, durationSeconds: number, requestBytes: number, responseBytes: number): void {
    series.requests.value++;
    series.duration.observe(durationSeconds);
    series.requestBytes.value += requestBytes;
    series.responseBytes.value += responseBytes;
  }

  /** series() + observe() in one call, for callers that do not keep the handle. */
  record(
    direction: Direction,
    peer: string | null | undefined,
    route: string | null | undefined,
    method: string,
    status: number,
    grpcStatus: number | null,
    authz: AuthzResult,
    durationSeconds: number,
    requestBytes: number,
    responseBytes: number,
  ): void {
    this.observe(this.series(direction, peer, route, method, status, grpcStatus, authz), durationSeconds, requestBytes, responseBytes);
  }
}
