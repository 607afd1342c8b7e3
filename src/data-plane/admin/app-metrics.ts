import { http } from '../../common/net/node-http.ts';

/**
 * Metrics merging (issue 14 item 6): a pod annotated for Prometheus (`prometheus.io/scrape:
 * "true"` with its own port and path) keeps being scraped by a Prometheus outside the mesh.
 * Under STRICT mTLS that Prometheus cannot reach the app's port any more, so the injector
 * points the annotations at the sidecar's admin port, `/metrics/merged`, and tells the sidecar
 * where the app's metrics are (MESHLET_APP_METRICS=<port><path>). A scrape of /metrics/merged
 * fetches the app's metrics over loopback and serves them followed by the sidecar's own — the
 * approach Istio takes on its agent port.
 *
 * Rules (docs/metrics.md "Scraping a meshed app"):
 * - the app is asked for the Prometheus text format (0.0.4): two formats cannot be
 *   concatenated, and the sidecar's families are rendered in that format for this endpoint;
 *   an app that answers in OpenMetrics anyway is not merged (failure `openmetrics`);
 * - a family the app exposes wins: a sidecar family of the same name is left out (two HELP or
 *   TYPE lines for one name make Prometheus reject the whole scrape — the app's process_* and
 *   nodejs_* families are the usual case);
 * - a failed fetch (refused, timeout, a status other than 200, too large) never fails the
 *   scrape: the sidecar's own metrics are served with `meshlet_app_metrics_up{target} 0` and
 *   the reason counted, so the app being down is visible rather than a scrape error;
 * - bounded: the fetch has the scrape's own timeout (Prometheus sends it in
 *   X-Prometheus-Scrape-Timeout-Seconds; default 5 s, at most 30 s) and a size limit.
 */
export interface AppMetricsTarget {
  readonly port: number;
  /** Path (and query) of the app's metrics, starting with '/'. */
  readonly path: string;
}

export const APP_METRICS_MAX_BYTES = 32 * 1024 * 1024;
export const APP_METRICS_DEFAULT_TIMEOUT_MS = 5_000;
export const APP_METRICS_MAX_TIMEOUT_MS = 30_000;
const TEXT_FORMAT = 'text/plain;version=0.0.4';

export type AppMetricsFailure = 'refused' | 'timeout' | 'status' | 'too_large' | 'openmetrics';

export type AppMetricsResult = { readonly ok: true; readonly text: string } | { readonly ok: false; readonly reason: AppMetricsFailure; readonly detail: string };

/** `9102/metrics` (MESHLET_APP_METRICS) → target; the error says what is wrong. */
export function parseAppMetricsTarget(raw: string): AppMetricsTarget {
  const m = /^(\d{1,5})(\/[^\s]*)$/.exec(raw);
  if (!m) throw new Error('must be PORT/PATH, e.g. 9102/metrics');
  const port = Number(m[1]);
  if (port < 1 || port > 65535) throw new Error(`port ${port} is outside 1-65535`);
  return { port, path: m[2]! };
}

/** The scrape timeout Prometheus announces, bounded; the default when absent or unreadable. */
export function scrapeTimeoutMs(header: string | string[] | undefined): number {
  const seconds = Number(Array.isArray(header) ? header[0] : header);
  if (!Number.isFinite(seconds) || seconds <= 0) return APP_METRICS_DEFAULT_TIMEOUT_MS;
  // A little under the scraper's own deadline, so the merged answer still arrives in time.
  return Math.min(APP_METRICS_MAX_TIMEOUT_MS, Math.max(100, Math.floor(seconds * 1000 * 0.9)));
}

/** GETs the app's metrics over loopback in the text format. Never rejects. */
export function fetchAppMetrics(target: AppMetricsTarget, timeoutMs: number, host = '127.0.0.1'): Promise<AppMetricsResult> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (r: AppMetricsResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(r);
    };
    const req = http.get({ host, port: target.port, path: target.path, headers: { accept: TEXT_FORMAT }, agent: false }, (res) => {
      const type = String(res.headers['content-type'] ?? '');
      if (res.statusCode !== 200) {
        res.resume();
        return done({ ok: false, reason: 'status', detail: `the app answered ${res.statusCode} on ${target.path}` });
      }
      if (/application\/openmetrics-text/i.test(type)) {
        res.resume();
        return done({ ok: false, reason: 'openmetrics', detail: 'the app answered in OpenMetrics although the text format was asked for' });
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > APP_METRICS_MAX_BYTES) {
          res.destroy();
          return done({ ok: false, reason: 'too_large', detail: `more than ${APP_METRICS_MAX_BYTES} bytes` });
        }
        chunks.push(c);
      });
      res.on('end', () => done({ ok: true, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', (err) => done({ ok: false, reason: 'refused', detail: err.message }));
    });
    const timer = setTimeout(() => {
      req.destroy();
      done({ ok: false, reason: 'timeout', detail: `no complete answer within ${timeoutMs} ms` });
    }, timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) => done({ ok: false, reason: 'refused', detail: `${err.code ?? err.message} on 127.0.0.1:${target.port}` }));
  });
}

/** Metric family names a text exposition declares (HELP/TYPE lines) or uses (sample names). */
export function familyNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    if (line.startsWith('# HELP ') || line.startsWith('# TYPE ')) {
      const name = line.slice(7).split(' ', 1)[0];
      if (name) names.add(name);
    } else if (line !== '' && line[0] !== '#') {
      const m = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
      if (m) names.add(m[0]);
    }
  }
  return names;
}

/** Suffixes under which one family's samples appear (histogram, summary, counter). */
const SAMPLE_SUFFIXES = ['_bucket', '_sum', '_count', '_total', '_created', '_info'];

function familyOf(sampleName: string, declared: ReadonlySet<string>): string {
  if (declared.has(sampleName)) return sampleName;
  for (const s of SAMPLE_SUFFIXES) if (sampleName.endsWith(s) && declared.has(sampleName.slice(0, -s.length))) return sampleName.slice(0, -s.length);
  return sampleName;
}

/**
 * The sidecar's own exposition (text format, as prom-client groups it: HELP, TYPE, samples per
 * family) without the families the app already exposes.
 */
export function withoutFamilies(sidecarText: string, taken: ReadonlySet<string>): string {
  const declared = new Set<string>();
  for (const line of sidecarText.split('\n')) if (line.startsWith('# TYPE ')) declared.add(line.slice(7).split(' ', 1)[0]!);
  const clash = (name: string): boolean => taken.has(name) || SAMPLE_SUFFIXES.some((s) => taken.has(name + s));
  const kept: string[] = [];
  for (const line of sidecarText.split('\n')) {
    let name: string | undefined;
    if (line.startsWith('# HELP ') || line.startsWith('# TYPE ')) name = line.slice(7).split(' ', 1)[0];
    else if (line !== '' && line[0] !== '#') name = familyOf(/^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)?.[0] ?? '', declared);
    if (name !== undefined && clash(name)) continue;
    kept.push(line);
  }
  return kept.join('\n');
}

/**
 * The merged answer: the app's families first, then the sidecar's that do not clash (the
 * sidecar's include meshlet_app_metrics_up{target}, set from this very fetch before rendering).
 */
export function mergeExpositions(app: AppMetricsResult, sidecarText: string): string {
  if (!app.ok) return sidecarText;
  const appText = app.text.endsWith('\n') || app.text === '' ? app.text : `${app.text}\n`;
  return appText + withoutFamilies(sidecarText, familyNames(appText));
}

/** The `target` label of meshlet_app_metrics_up: `PORT/PATH` as MESHLET_APP_METRICS says it. */
export function targetLabel(target: AppMetricsTarget): string {
  return `${target.port}${target.path}`;
}
