// Issue 14 item 6: a pod annotated for Prometheus on an intercepted port is scraped through the
// sidecar's /metrics/merged; what the injector writes is what the sidecar reads.
import { describe, expect, it } from 'vitest';
import { applyJsonPatch, DEFAULT_INJECTION_SETTINGS, injectPod, type Pod } from '../../../src/control-plane/injector/patch/index.ts';
import { readSidecarConfig } from '../../../src/data-plane/sidecar/sidecar-env.ts';

function pod(annotations: Record<string, string>): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'p', namespace: 'shop', annotations },
    spec: { containers: [{ name: 'app', image: 'app:1', ports: [{ name: 'http', containerPort: 8080 }, { name: 'metrics', containerPort: 9102 }] }] },
  } as Pod;
}

function inject(annotations: Record<string, string>) {
  const p = pod(annotations);
  const r = injectPod(p, 'shop', DEFAULT_INJECTION_SETTINGS);
  if (r.outcome !== 'injected') throw new Error(`not injected: ${r.message}`);
  const patched = applyJsonPatch(p, r.patch) as Pod;
  const proxy = patched.spec.initContainers!.find((c) => c.name === 'meshlet-proxy')!;
  const env = Object.fromEntries((proxy.env as { name: string; value?: string }[]).map((e) => [e.name, e.value]));
  return { annotations: patched.metadata!.annotations!, env, warnings: r.warnings };
}

const SCRAPED = { 'prometheus.io/scrape': 'true', 'prometheus.io/port': '9102', 'prometheus.io/path': '/stats' };

describe('Prometheus annotations', () => {
  it('a pod with none gets the sidecar own /metrics, and no MESHLET_APP_METRICS', () => {
    const r = inject({});
    expect(r.annotations).toMatchObject({ 'prometheus.io/scrape': 'true', 'prometheus.io/port': '15020', 'prometheus.io/path': '/metrics' });
    expect(r.env.MESHLET_APP_METRICS).toBeUndefined();
  });

  it('an app scraped on an intercepted port is pointed at /metrics/merged; the sidecar reads the target', () => {
    const r = inject(SCRAPED);
    expect(r.annotations).toMatchObject({ 'prometheus.io/scrape': 'true', 'prometheus.io/port': '15020', 'prometheus.io/path': '/metrics/merged' });
    expect(r.env.MESHLET_APP_METRICS).toBe('9102/stats');
    const config = readSidecarConfig({ MESHLET_NAMESPACE: 'shop', MESHLET_SERVICE_ACCOUNT: 'sa', MESHLET_APP_METRICS: r.env.MESHLET_APP_METRICS! });
    expect(config.appMetrics).toEqual({ port: 9102, path: '/stats' });
  });

  it('the path defaults to /metrics; an undeclared port is intercepted too', () => {
    expect(inject({ 'prometheus.io/scrape': 'true', 'prometheus.io/port': '7000' }).env.MESHLET_APP_METRICS).toBe('7000/metrics');
  });

  it.each([
    ['meshlet.io/merge-metrics: "false"', { ...SCRAPED, 'meshlet.io/merge-metrics': 'false' }],
    ['a port skipped from interception', { ...SCRAPED, 'meshlet.io/skip-inbound-ports': '9102' }],
    ['scrape "false"', { ...SCRAPED, 'prometheus.io/scrape': 'false' }],
  ])('%s: the annotations stay as the pod has them', (_what, annotations) => {
    const r = inject(annotations);
    expect(r.annotations['prometheus.io/port']).toBe('9102');
    expect(r.annotations['prometheus.io/path']).toBe('/stats');
    expect(r.env.MESHLET_APP_METRICS).toBeUndefined();
  });

  it.each([
    ['no port', { 'prometheus.io/scrape': 'true' }, /prometheus.io\/port is absent/],
    ['https', { ...SCRAPED, 'prometheus.io/scheme': 'https' }, /"https"/],
  ])('%s: left alone, with a warning', (_what, annotations, warning) => {
    const r = inject(annotations);
    expect(r.env.MESHLET_APP_METRICS).toBeUndefined();
    expect(r.warnings.join('\n')).toMatch(warning);
  });

  it('a bad MESHLET_APP_METRICS is a configuration error naming the variable', () => {
    expect(() => readSidecarConfig({ MESHLET_NAMESPACE: 'shop', MESHLET_SERVICE_ACCOUNT: 'sa', MESHLET_APP_METRICS: 'metrics' })).toThrow(/MESHLET_APP_METRICS.*PORT\/PATH/s);
  });
});
