// docs/identity-sources.md "Federation" and docs/metrics.md "Identity federation" are contracts:
// every reason, code, default and metric they state is what the code does.
import { readFileSync } from 'node:fs';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { FEDERATION_REASON_OF_CODE, MAX_BUNDLE_FILE_BYTES, trustDomainOfFileName } from '../../../src/data-plane/identity/federation/bundle-directory.ts';
import { FEDERATION_DEFAULTS } from '../../../src/data-plane/identity/federation/federated-bundles.ts';
import { FederationMetrics } from '../../../src/data-plane/identity/federation/federation-metrics.ts';
import { SIDECAR_ENV } from '../../../src/data-plane/sidecar/sidecar-env.ts';

const read = (p: string) => readFileSync(new URL(`../../../${p}`, import.meta.url), 'utf8');
const sources = read('docs/identity-sources.md');
const section = sources.slice(sources.indexOf('## Federation'), sources.indexOf('## Error codes'));
const metricsDoc = read('docs/metrics.md');

describe('docs/identity-sources.md, Federation', () => {
  it('lists exactly the refusal reasons and codes the code has', () => {
    const rows = [...section.matchAll(/^ {2}\| `([a-z_0-9]+)` \| `(FEDERATION_[A-Z_0-9]+)` \|/gm)].map((m) => [m[2], m[1]]);
    expect(Object.fromEntries(rows)).toEqual(FEDERATION_REASON_OF_CODE);
  });

  it('states the poll interval, the size limit and the default the code applies', () => {
    expect(FEDERATION_DEFAULTS.pollMs).toBe(2_000);
    expect(section).toContain('also read every **2 s**');
    expect(MAX_BUNDLE_FILE_BYTES).toBe(1024 * 1024);
    expect(section).toContain('over 1 MiB');
    expect(SIDECAR_ENV.federationBundles.default).toBe('');
    expect(section).toContain('# default: unset = no federation');
  });

  it('its pod example mounts the ConfigMap where MESHLET_FEDERATION_BUNDLES points, optional', () => {
    const yamlBlock = /```yaml\n([\s\S]*?)```/.exec(section)![1]!;
    const example = parseAllDocuments(yamlBlock)[0]!.toJS() as {
      env: { name: string; value: string }[];
      volumeMounts: { name: string; mountPath: string; readOnly: boolean }[];
      volumes: { name: string; configMap: { name: string; optional: boolean } }[];
    };
    const dir = example.env.find((e) => e.name === SIDECAR_ENV.federationBundles.name)!.value;
    const mount = example.volumeMounts.find((m) => m.mountPath === dir)!;
    expect(mount.readOnly).toBe(true);
    expect(example.volumes.find((v) => v.name === mount.name)!.configMap).toEqual({ name: 'meshlet-federation', optional: true });
  });

  it('its key names mean the trust domains it says', () => {
    expect(section).toContain('(`partner.example` and `partner.example.json` both name `partner.example`)');
    expect(trustDomainOfFileName('partner.example')).toBe('partner.example');
    expect(trustDomainOfFileName('partner.example.json')).toBe('partner.example');
  });
});

describe('docs/metrics.md, Identity federation', () => {
  it('documents the federation metrics as registered: name, type, reasons', async () => {
    const registry = new Registry();
    new FederationMetrics(registry);
    const registered = await registry.getMetricsAsJSON();
    const documented = new Map([...metricsDoc.matchAll(/^\| `(meshlet_federation_[a-z_]+)` \| ([a-z]+) \| ([^|]+) \| ([^\n]+) \|$/gm)].map((m) => [m[1]!, { type: m[2]!, labels: m[3]!.trim(), meaning: m[4]! }]));
    expect([...documented.keys()].sort()).toEqual(registered.map((m) => m.name).sort());
    for (const m of registered) {
      expect(documented.get(m.name)!.type, m.name).toBe(String(m.type));
      const labels = [...new Set(m.values.flatMap((v) => Object.keys(v.labels)))];
      expect(documented.get(m.name)!.labels, m.name).toBe(labels.length === 0 ? '—' : labels.join(', '));
    }
    const errors = registered.find((m) => m.name === 'meshlet_federation_bundle_errors_total')!;
    const reasons = errors.values.map((v) => String(v.labels.reason));
    expect(reasons.sort()).toEqual(Object.values(FEDERATION_REASON_OF_CODE).sort());
    for (const reason of reasons) expect(documented.get('meshlet_federation_bundle_errors_total')!.meaning).toContain(`\`${reason}\``);
  });
});
