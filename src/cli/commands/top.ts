import { setTimeout as sleep } from 'node:timers/promises';
import type { Command, CommandIo } from '../command.ts';
import { parseFlags, requireFlag } from '../command.ts';
import { MeshletError, UsageError } from '../../common/errors/meshlet-error.ts';
import { DurationError, parseDuration } from '../../common/config/duration.ts';
import { AdminBadResponseError, fetchAdmin, parseAdminUrl } from '../scrape/admin-client.ts';
import { PROMETHEUS_TEXT } from '../../data-plane/metrics/exposition.ts';
import { formatLatency, formatTable } from '../scrape/format-table.ts';
import { ExpositionParseError, parseExposition, type Exposition } from '../scrape/parse-exposition.ts';
import { routeStats, type RouteStats } from '../scrape/route-stats.ts';

const help = `Usage: meshlet top --admin URL [--interval 2s] [--once] [--output table|json]

Shows, per direction and route, what a sidecar served between two scrapes of its admin
port's /metrics: requests, requests per second, error rate (5xx, or a gRPC status other
than OK), policy denials, and latency percentiles p50/p95/p99 estimated from the
meshlet_request_duration_seconds histogram (as Prometheus' histogram_quantile does).
The table is redrawn every interval until Ctrl-C.

Flags:
  --admin URL          the sidecar's admin address, e.g. http://127.0.0.1:15020
  --interval D         time between scrapes (default 2s; e.g. 500ms, 5s)
  --once               take two scrapes one interval apart, print once and exit
  --output table|json  json: one JSON object per refresh {"elapsedSeconds", "routes": [...]}

Exit status: 0 on success, 1 when the admin port is unreachable or does not serve meshlet
metrics, 2 on a usage error.`;

class Scraper {
  readonly #base: URL;
  constructor(base: URL) {
    this.#base = base;
  }

  async scrape(): Promise<{ exposition: Exposition; at: number }> {
    const url = new URL('/metrics', this.#base).toString();
    // Text 0.0.4: the counters keep their `_total` sample names either way, but it is the simpler format.
    const { body } = await fetchAdmin(this.#base, '/metrics', { accept: PROMETHEUS_TEXT });
    const at = performance.now();
    let exposition: Exposition;
    try {
      exposition = parseExposition(body);
    } catch (err) {
      if (err instanceof ExpositionParseError) throw new AdminBadResponseError(url, `not Prometheus text (${err.message})`);
      throw err;
    }
    if (!exposition.types.has('meshlet_requests_total') && !exposition.types.has('meshlet_requests')) {
      throw new AdminBadResponseError(url, 'no meshlet_requests_total metric (is this a meshlet sidecar?)');
    }
    return { exposition, at };
  }
}

function percent(rate: number | null): string {
  return rate === null ? '-' : `${(rate * 100).toFixed(1)}%`;
}

export function topTable(routes: readonly RouteStats[], elapsedSeconds: number): string {
  const header = `meshlet top — ${routes.length} route${routes.length === 1 ? '' : 's'} over the last ${elapsedSeconds.toFixed(1)}s\n\n`;
  if (routes.length === 0) return header + 'no requests between the two scrapes\n';
  const rows = routes.map((r) => [
    r.direction,
    r.route,
    String(r.requests),
    r.requestsPerSecond.toFixed(1),
    percent(r.errorRate),
    String(r.denied),
    formatLatency(r.p50),
    formatLatency(r.p95),
    formatLatency(r.p99),
  ]);
  return header + formatTable(['DIRECTION', 'ROUTE', 'REQS', 'RPS', 'ERRORS', 'DENIED', 'P50', 'P95', 'P99'], rows, new Set([2, 3, 4, 5, 6, 7, 8]));
}

function render(routes: RouteStats[], elapsedSeconds: number, output: string): string {
  return output === 'json' ? JSON.stringify({ elapsedSeconds, routes }) + '\n' : topTable(routes, elapsedSeconds);
}

/** Resolves when the user presses Ctrl-C (or the process is told to stop). */
function untilInterrupted(): { signal: AbortSignal; dispose: () => void } {
  const ac = new AbortController();
  const stop = () => ac.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return {
    signal: ac.signal,
    dispose: () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    },
  };
}

async function live(scraper: Scraper, intervalMs: number, output: string, io: CommandIo): Promise<number> {
  const { signal, dispose } = untilInterrupted();
  try {
    let prev = await scraper.scrape();
    while (!signal.aborted) {
      try {
        await sleep(intervalMs, undefined, { signal });
      } catch {
        break;
      }
      // ANSI: clear the screen and home the cursor, so the table redraws in place.
      const clear = output === 'table' ? '\x1b[2J\x1b[H' : '';
      try {
        const cur = await scraper.scrape();
        const elapsed = (cur.at - prev.at) / 1000;
        io.stdout.write(clear + render(routeStats(prev.exposition, cur.exposition, elapsed), elapsed, output));
        prev = cur;
      } catch (err) {
        // A live view outlives a sidecar restart: say what failed and keep trying.
        if (!(err instanceof MeshletError)) throw err;
        io.stdout.write(`${clear}meshlet top: ${err.code}: ${err.message}\n`);
      }
    }
    return 0;
  } finally {
    dispose();
  }
}

export const commands: Command[] = [
  {
    name: 'top',
    summary: 'per-route request rate, error rate and latency percentiles of a sidecar, live',
    help,
    async run(argv, io) {
      const { values } = parseFlags(argv, {
        admin: { type: 'string' },
        interval: { type: 'string', default: '2s' },
        once: { type: 'boolean', default: false },
        output: { type: 'string', default: 'table' },
      });
      const base = parseAdminUrl(requireFlag(values, 'admin'));
      if (values.output !== 'table' && values.output !== 'json') throw new UsageError('--output must be table or json');
      let intervalMs: number;
      try {
        intervalMs = parseDuration(values.interval, '--interval');
      } catch (err) {
        if (err instanceof DurationError) throw new UsageError(err.message);
        throw err;
      }
      const scraper = new Scraper(base);
      if (!values.once) return live(scraper, intervalMs, values.output, io);
      const first = await scraper.scrape();
      await sleep(intervalMs);
      const second = await scraper.scrape();
      const elapsed = (second.at - first.at) / 1000;
      io.stdout.write(render(routeStats(first.exposition, second.exposition, elapsed), elapsed, values.output));
      return 0;
    },
  },
];
