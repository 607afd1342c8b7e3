import type { Exposition, Sample } from './parse-exposition.ts';

/** What `meshlet top` shows for one (direction, route) between two scrapes. */
export interface RouteStats {
  direction: string;
  route: string;
  /** Requests completed between the scrapes. */
  requests: number;
  /** Of those: 5xx, or a gRPC status other than OK. */
  errors: number;
  /** Of those: denied by policy (authz="deny"). */
  denied: number;
  requestsPerSecond: number;
  /** errors / requests; null when there were no requests. */
  errorRate: number | null;
  /** Latency quantiles in seconds from the histogram buckets' deltas; null without requests. */
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

const REQUESTS = 'meshlet_requests_total';
const BUCKETS = 'meshlet_request_duration_seconds_bucket';

function seriesKey(s: Sample, skip?: string): string {
  let key = s.name;
  for (const k of Object.keys(s.labels).sort()) if (k !== skip) key += `\u0000${k}=${s.labels[k]}`;
  return key;
}

function byKey(samples: readonly Sample[], name: string, skip?: string): Map<string, Sample> {
  const m = new Map<string, Sample>();
  for (const s of samples) if (s.name === name) m.set(seriesKey(s, skip) + (skip ? `\u0000${skip}=${s.labels[skip]}` : ''), s);
  return m;
}

/** A counter's increase; a smaller value means the sidecar restarted (Prometheus' rule). */
function increase(prev: number | undefined, cur: number): number {
  if (prev === undefined) return cur;
  return cur >= prev ? cur - prev : cur;
}

/**
 * The Prometheus histogram_quantile() estimate: find the bucket holding rank q*count and
 * interpolate linearly inside it; the +Inf bucket answers with the highest finite bound.
 * `buckets` are cumulative counts by upper bound.
 */
export function histogramQuantile(q: number, buckets: ReadonlyMap<number, number>): number | null {
  const sorted = [...buckets.entries()].sort((a, b) => a[0] - b[0]);
  const last = sorted[sorted.length - 1];
  if (last === undefined || last[1] <= 0) return null;
  const rank = q * last[1];
  let prevBound = 0;
  let prevCount = 0;
  for (const [bound, count] of sorted) {
    if (count >= rank) {
      if (bound === Infinity) return prevBound;
      if (count === prevCount) return bound;
      return prevBound + (bound - prevBound) * ((rank - prevCount) / (count - prevCount));
    }
    prevBound = bound;
    prevCount = count;
  }
  return prevBound;
}

/**
 * Per-route request rate, error rate and latency percentiles between two scrapes taken
 * `elapsedSeconds` apart. Series are matched by their full label set; routes are aggregated
 * over peers, methods and statuses. Sorted by requests, busiest first.
 */
export function routeStats(prev: Exposition, cur: Exposition, elapsedSeconds: number): RouteStats[] {
  const rows = new Map<string, RouteStats & { buckets: Map<number, number> }>();
  const row = (labels: Readonly<Record<string, string>>) => {
    const direction = labels.direction ?? '';
    const route = labels.route ?? '';
    const key = `${direction}\u0000${route}`;
    let r = rows.get(key);
    if (r === undefined) {
      r = { direction, route, requests: 0, errors: 0, denied: 0, requestsPerSecond: 0, errorRate: null, p50: null, p95: null, p99: null, buckets: new Map() };
      rows.set(key, r);
    }
    return r;
  };
  const prevRequests = byKey(prev.samples, REQUESTS);
  for (const [key, s] of byKey(cur.samples, REQUESTS)) {
    const d = increase(prevRequests.get(key)?.value, s.value);
    const r = row(s.labels);
    r.requests += d;
    const grpc = s.labels.grpc_status;
    if (s.labels.status_class === '5xx' || (grpc !== undefined && grpc !== 'none' && grpc !== '0')) r.errors += d;
    if (s.labels.authz === 'deny') r.denied += d;
  }
  const prevBuckets = byKey(prev.samples, BUCKETS, 'le');
  for (const [key, s] of byKey(cur.samples, BUCKETS, 'le')) {
    const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
    const r = row(s.labels);
    r.buckets.set(le, (r.buckets.get(le) ?? 0) + increase(prevBuckets.get(key)?.value, s.value));
  }
  const out: RouteStats[] = [];
  for (const { buckets, ...r } of rows.values()) {
    if (r.requests === 0 && ![...buckets.values()].some((c) => c > 0)) continue;
    r.requestsPerSecond = elapsedSeconds > 0 ? r.requests / elapsedSeconds : 0;
    r.errorRate = r.requests > 0 ? r.errors / r.requests : null;
    r.p50 = histogramQuantile(0.5, buckets);
    r.p95 = histogramQuantile(0.95, buckets);
    r.p99 = histogramQuantile(0.99, buckets);
    out.push(r);
  }
  return out.sort((a, b) => b.requests - a.requests || a.direction.localeCompare(b.direction) || a.route.localeCompare(b.route));
}
