import type { Registry, MetricObjectWithValues, MetricValue } from 'prom-client';

/**
 * Prometheus exposition with content negotiation.
 *
 * prom-client renders one format per registry, and switching a registry to OpenMetrics
 * renames its counters in place (it strips `_total` from the metric objects), so a registry
 * cannot safely serve both formats to concurrent scrapers. Prometheus 3 asks for
 * OpenMetrics first, older scrapers for text 0.0.4: we render both ourselves from the
 * registry's JSON snapshot, which never mutates it.
 */
export const PROMETHEUS_TEXT = 'text/plain; version=0.0.4; charset=utf-8';
export const OPENMETRICS_TEXT = 'application/openmetrics-text; version=1.0.0; charset=utf-8';

/** Picks the format from an Accept header: OpenMetrics only when the scraper asks for it. */
export function negotiateFormat(accept: string | undefined): 'openmetrics' | 'text' {
  if (!accept) return 'text';
  return /application\/openmetrics-text/i.test(accept) ? 'openmetrics' : 'text';
}

const NEEDS_ESCAPE = /[\\\n"]/;

function escapeLabel(v: string): string {
  // Label values are identities and route names: almost never anything to escape.
  if (!NEEDS_ESCAPE.test(v)) return v;
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/**
 * Rendered `{k="v",…}` strings of frozen label objects. meshlet's own series (src/data-plane/metrics/series.ts)
 * freeze their label objects once, so a scrape of thousands of series renders each label set
 * once per process instead of once per scrape (profiled: label formatting was the largest single
 * cost of a scrape with 1,000 request label sets). Unfrozen objects (prom-client's) are rendered each time,
 * since nothing stops their owner from changing them.
 */
const renderedLabels = new WeakMap<object, string>();

function formatLabels(labels: Record<string, string | number | undefined>): string {
  const frozen = Object.isFrozen(labels);
  if (frozen) {
    const cached = renderedLabels.get(labels);
    if (cached !== undefined) return cached;
  }
  let out = '';
  for (const k in labels) {
    const v = labels[k];
    if (v === undefined) continue;
    const value = typeof v === 'number' ? formatValue(v) : String(v);
    out += `${out === '' ? '' : ','}${k}="${escapeLabel(value)}"`;
  }
  const rendered = out === '' ? '' : `{${out}}`;
  if (frozen) renderedLabels.set(labels, rendered);
  return rendered;
}

type Metric = MetricObjectWithValues<MetricValue<string>>;

function renderMetric(m: Metric, openMetrics: boolean): string {
  const lines: string[] = [];
  let family = m.name;
  const baseType = String(m.type);
  let type = baseType;
  if (openMetrics && baseType === 'counter') family = family.replace(/_total$/, '');
  // Our `_info` metrics are gauges fixed at 1 (the Prometheus convention); OpenMetrics has a
  // proper `info` type whose samples carry the `_info` suffix.
  if (openMetrics && type === 'gauge' && family.endsWith('_info')) {
    family = family.slice(0, -'_info'.length);
    type = 'info';
  }
  lines.push(`# HELP ${family} ${escapeHelp(m.help)}`);
  lines.push(`# TYPE ${family} ${type}`);
  for (const v of m.values) {
    const sampleName = (v as { metricName?: string }).metricName ?? (openMetrics && baseType === 'counter' ? `${family}_total` : m.name);
    lines.push(`${sampleName}${formatLabels(v.labels as Record<string, string | number>)} ${formatValue(v.value)}`);
  }
  return lines.join('\n');
}

/** Renders the registry in the requested format; never mutates the registry. */
export async function renderMetrics(registry: Registry, format: 'openmetrics' | 'text'): Promise<string> {
  const metrics = (await registry.getMetricsAsJSON()) as Metric[];
  const open = format === 'openmetrics';
  const body = metrics.map((m) => renderMetric(m, open)).join('\n');
  return open ? `${body}\n# EOF\n` : `${body}\n`;
}
