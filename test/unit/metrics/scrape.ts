import type { Registry } from 'prom-client';
import { renderMetrics } from '../../../src/data-plane/metrics/exposition.ts';
import { parseExposition, type Sample } from '../../../src/cli/scrape/parse-exposition.ts';

/** Renders `registry` as a scraper would get it and parses it back: what Prometheus would store. */
export async function scrape(registry: Registry): Promise<Sample[]> {
  return [...parseExposition(await renderMetrics(registry, 'text')).samples];
}

/** The value of the one sample with exactly this name and these labels (undefined if absent). */
export function valueOf(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const want = Object.entries(labels);
  const hits = samples.filter((s) => s.name === name && Object.keys(s.labels).length === want.length && want.every(([k, v]) => s.labels[k] === v));
  if (hits.length > 1) throw new Error(`${hits.length} samples of ${name} with labels ${JSON.stringify(labels)}`);
  return hits[0]?.value;
}

export function named(samples: readonly Sample[], name: string): Sample[] {
  return samples.filter((s) => s.name === name);
}
