// docs/metrics.md is the SRE's reference and deploy/monitoring/ what they install: every
// metric meshlet registers must be documented, nothing documented may be stale, and every
// dashboard/alert query must name metrics that exist.
import { readFileSync } from 'node:fs';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { promInjectorMetrics } from '../../../src/control-plane/injector/metrics.ts';
import { promCertifyMetrics, promDiscoveryMetrics } from '../../../src/control-plane/identity-service/metrics.ts';
import { SidecarMetrics } from '../../../src/data-plane/metrics/sidecar-metrics.ts';
import { AdminMetrics } from '../../../src/data-plane/admin/admin-metrics.ts';
import { FederationMetrics } from '../../../src/data-plane/identity/federation/federation-metrics.ts';
import { RevocationMetrics, RevokedConnectionMetrics } from '../../../src/data-plane/identity/revocation/revocation-metrics.ts';

const read = (p: string) => readFileSync(new URL(`../../../${p}`, import.meta.url), 'utf8');
const doc = read('docs/metrics.md');

/** name -> type of every metric meshlet registers (sidecar + control plane). */
async function registered(): Promise<Map<string, string>> {
  const sidecar = new SidecarMetrics({ processMetrics: false });
  // The admin server registers its own family on the sidecar's registry when it starts.
  new AdminMetrics(sidecar.registry);
  // Families registered only when their feature is configured (federation, revocation).
  new FederationMetrics(sidecar.registry);
  new RevocationMetrics(sidecar.registry);
  new RevokedConnectionMetrics(sidecar.registry);
  const control = new Registry();
  promCertifyMetrics(control);
  promDiscoveryMetrics(control);
  promInjectorMetrics(control);
  const out = new Map<string, string>();
  for (const m of [...(await sidecar.registry.getMetricsAsJSON()), ...(await control.getMetricsAsJSON())]) out.set(m.name, String(m.type));
  return out;
}

/** Metric table rows: | `name` | type | labels | meaning | */
const documented = new Map<string, string>();
for (const line of doc.split('\n')) {
  const m = /^\| `(meshlet_[a-z_]+)` \| ([a-z]+)/.exec(line);
  if (m) documented.set(m[1]!, m[2]!);
}

/** Metric names a PromQL expression uses (histogram sample suffixes mapped to the family). */
function metricsIn(expr: string): string[] {
  return [...expr.matchAll(/\bmeshlet_[a-z_]+/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, ''));
}

describe('docs/metrics.md', () => {
  it('documents every registered metric with its type', async () => {
    for (const [name, type] of await registered()) {
      expect(documented.has(name), `${name} is missing from a metric table in docs/metrics.md`).toBe(true);
      expect(documented.get(name), `${name} type`).toBe(type);
    }
  });

  it('documents no metric that does not exist', async () => {
    const names = await registered();
    for (const name of documented.keys()) expect(names.has(name), `${name} is documented but not registered`).toBe(true);
  });

  it('uses only existing metrics in its PromQL examples', async () => {
    const names = await registered();
    const blocks = [...doc.matchAll(/```promql\n([\s\S]*?)```/g)].map((m) => m[1]!);
    expect(blocks.length).toBeGreaterThan(5);
    for (const b of blocks) for (const n of metricsIn(b)) expect(names.has(n), `${n} in a docs query`).toBe(true);
  });
});

describe('deploy/monitoring', () => {
  it('the Grafana dashboard is valid JSON whose every query names existing metrics, and every panel is explained', async () => {
    const names = await registered();
    const dash = JSON.parse(read('deploy/monitoring/grafana-dashboard.json')) as { uid: string; panels: { type: string; title: string; targets?: { expr: string }[] }[] };
    expect(dash.uid).toBe('meshlet-overview');
    const panels = dash.panels.filter((p) => p.type !== 'row');
    expect(panels.length).toBeGreaterThanOrEqual(10);
    const used = new Set<string>();
    for (const p of panels) {
      expect(p.targets?.length, `${p.title} has no query`).toBeGreaterThan(0);
      for (const t of p.targets!) for (const n of metricsIn(t.expr)) {
        expect(names.has(n), `${n} in panel ${p.title}`).toBe(true);
        used.add(n);
      }
      expect(doc, `panel "${p.title}" is not in the docs' panel table`).toContain(`| ${p.title} |`);
    }
    // The panels: request rate, success rate, latency, denials, connections, certificate expiry.
    for (const n of ['meshlet_requests_total', 'meshlet_request_duration_seconds', 'meshlet_authz_decisions_total', 'meshlet_tcp_open_connections', 'meshlet_identity_cert_expiration_timestamp_seconds']) {
      expect(used.has(n), `no panel uses ${n}`).toBe(true);
    }
  });

  it('the scrape config keys on the annotations and admin port the injector sets', () => {
    const cfg = parseYaml(read('deploy/monitoring/prometheus-scrape-config.yaml')) as { scrape_configs: { job_name: string; relabel_configs: { source_labels?: string[]; regex?: string }[] }[] };
    const sidecars = cfg.scrape_configs.find((j) => j.job_name === 'meshlet-sidecars')!;
    const sources = sidecars.relabel_configs.flatMap((r) => r.source_labels ?? []);
    expect(sources).toEqual(expect.arrayContaining(['__meta_kubernetes_pod_annotation_prometheus_io_scrape', '__meta_kubernetes_pod_annotation_prometheus_io_port', '__meta_kubernetes_pod_annotation_prometheus_io_path']));
    expect(sidecars.relabel_configs.some((r) => r.regex === 'meshlet-admin')).toBe(true);
  });

  it('the PodMonitor, rules and kustomization parse, and the alert queries name existing metrics', async () => {
    const names = await registered();
    const pm = parseAllDocuments(read('deploy/monitoring/podmonitor.yaml')).map((d) => d.toJS() as { kind: string; spec: { podMetricsEndpoints: { port: string }[] } });
    expect(pm.map((d) => d.kind)).toEqual(['PodMonitor', 'PodMonitor']);
    expect(pm[0]!.spec.podMetricsEndpoints[0]!.port).toBe('meshlet-admin');
    const rules = parseYaml(read('deploy/monitoring/prometheus-rules.yaml')) as { spec: { groups: { rules: { alert: string; expr: string }[] }[] } };
    const exprs = rules.spec.groups.flatMap((g) => g.rules.map((r) => r.expr));
    expect(exprs.length).toBeGreaterThan(3);
    for (const e of exprs) for (const n of metricsIn(e)) expect(names.has(n), `${n} in an alert`).toBe(true);
    const k = parseYaml(read('deploy/monitoring/kustomization.yaml')) as { resources: string[]; configMapGenerator: { files: string[] }[] };
    expect(k.resources).toEqual(['podmonitor.yaml', 'prometheus-rules.yaml']);
    expect(k.configMapGenerator[0]!.files).toEqual(['grafana-dashboard.json']);
  });
});
