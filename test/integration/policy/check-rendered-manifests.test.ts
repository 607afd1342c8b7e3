// Issue 17: `kubectl kustomize deploy/examples | meshlet policy check -` checks the policy
// ConfigMap it finds and skips the Deployments, Services and Namespace, saying how many it
// skipped. The rendered stream is test/fixtures/rendered/deploy-examples.yaml (real kustomize
// output, committed: kubectl may be absent where `npm test` runs); where kubectl is present the
// fixture is compared with a fresh render, and the fresh render is checked too.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { runCli as run } from '../../unit/injector/cli-support.ts';
import { findBinaries } from '../../cluster/binaries.ts';
import { POLICY_CONFIGMAP_RULES } from '../../../src/cli/commands/policy.ts';
import { DEFAULT_POLICY_CONFIGMAP } from '../../../src/control-plane/injector/patch/pod-layout.ts';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const FIXTURE = fileURLToPath(new URL('../../fixtures/rendered/deploy-examples.yaml', import.meta.url));
const rendered = readFileSync(FIXTURE, 'utf8');

/** A kubectl with kustomize: the cluster build's, else one on PATH; undefined when there is none. */
async function findKubectl(): Promise<string | undefined> {
  try {
    const built = findBinaries().paths.kubectl;
    if (built && existsSync(built)) return built;
  } catch {
    // no build script answer: try PATH
  }
  try {
    await promisify(execFile)('kubectl', ['version', '--client'], { timeout: 20_000 });
    return 'kubectl';
  } catch {
    return undefined;
  }
}
const kubectl = await findKubectl();

async function kustomize(dir: string): Promise<string> {
  const { stdout } = await promisify(execFile)(kubectl!, ['kustomize', dir], { cwd: REPO, timeout: 60_000, maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

/** The summary line for deploy/examples, counted from the stream itself. */
function expectedSummary(text: string): string {
  const kinds = new Map<string, number>();
  for (const d of parseAllDocuments(text)) {
    const kind = (d.toJS() as { kind: string }).kind;
    if (kind !== 'ConfigMap') kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
  }
  const skipped = [...kinds].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  const total = skipped.reduce((n, [, c]) => n + c, 0);
  return `checked 1 policy (1 ConfigMap key); skipped ${total} objects that are not policies: ${skipped.map(([k, n]) => `${k}×${n}`).join(', ')}`;
}

describe('meshlet policy check on rendered manifests (deploy/examples)', () => {
  it('checks the policy ConfigMap, skips every other object and says which, exit 0', async () => {
    const r = await run(['policy', 'check', '-'], rendered);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^<stdin> \(document \d+\): ConfigMap demo\/meshlet-policy data\[policy\.yaml\]: valid$/);
    expect(lines[1]).toBe(expectedSummary(rendered));
    expect(lines[1]).toMatch(/Deployment×2/);
  });

  it('docs/policy.md shows exactly this run (the "kubectl kustomize deploy/examples | meshlet policy check -" example)', async () => {
    const doc = readFileSync(`${REPO}docs/policy.md`, 'utf8');
    const block = /```console\n\$ kubectl kustomize deploy\/examples \| meshlet policy check -\n([\s\S]*?)```/.exec(doc);
    expect(block, 'docs/policy.md: no "kubectl kustomize deploy/examples | meshlet policy check -" example').not.toBeNull();
    const r = await run(['policy', 'check', '-'], rendered);
    expect(r.stdout).toBe(block![1]);
  });

  it('an error inside the rendered ConfigMap is reported at its line and column in the stream', async () => {
    const broken = rendered.replace('spiffe://cluster.local/ns/demo/sa/frontend', 'spiffe://Cluster.local/ns/demo/sa/frontend');
    expect(broken).not.toBe(rendered);
    const lineIndex = broken.split('\n').findIndex((l) => l.includes('spiffe://Cluster.local'));
    const col = broken.split('\n')[lineIndex]!.indexOf('spiffe://') + 1;
    const r = await run(['policy', 'check', '-'], broken);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^<stdin>:${lineIndex + 1}:${col}: error POLICY_BAD_SPIFFE_ID at spec\\.servers\\[0\\]\\.routes\\[0\\]\\.callers\\[0\\]\\.spiffeId: `));
    expect(r.stdout).toContain('data[policy.yaml]: INVALID, 1 error');
  });

  it('--output json lists what was checked and every skipped object with its place', async () => {
    const r = await run(['policy', 'check', '-', '--output', 'json'], rendered);
    const report = JSON.parse(r.stdout) as { valid: boolean; policies: { label: string }[]; checked: Record<string, number>; skipped: { source: string; kind: string; name: string }[] };
    expect(report.valid).toBe(true);
    expect(report.policies.map((p) => p.label)).toEqual([expect.stringMatching(/ConfigMap demo\/meshlet-policy data\[policy\.yaml\]$/)]);
    expect(report.checked).toEqual({ documents: 0, configMapKeys: 1, configMapsWithoutKey: 0 });
    expect(report.skipped).toContainEqual({ source: '<stdin>:1', kind: 'Namespace', apiVersion: 'v1', name: 'demo' });
    expect(report.skipped.filter((s) => s.kind === 'Deployment').map((s) => s.name).sort()).toEqual(['demo/frontend', 'demo/orders']);
  });

  it('the policy ConfigMap rules are the deployment\'s: the /validate objectSelector label and the name the injector mounts', () => {
    const webhook = parse(readFileSync(`${REPO}deploy/policy/validating-webhook.yaml`, 'utf8')) as { webhooks: { objectSelector: { matchLabels: Record<string, string> } }[] };
    expect(Object.entries(webhook.webhooks[0]!.objectSelector.matchLabels)).toEqual([[...POLICY_CONFIGMAP_RULES.label]]);
    expect(POLICY_CONFIGMAP_RULES.names).toEqual([DEFAULT_POLICY_CONFIGMAP]);
  });

  it.skipIf(kubectl === undefined)('the committed fixture is what kubectl kustomize deploy/examples prints today (refresh: test/fixtures/rendered/README.md)', async () => {
    const fresh = await kustomize('deploy/examples');
    expect(fresh, 'test/fixtures/rendered/deploy-examples.yaml is stale: run `kubectl kustomize deploy/examples > test/fixtures/rendered/deploy-examples.yaml`').toBe(rendered);
    const r = await run(['policy', 'check', '-'], fresh);
    expect([r.code, r.stderr]).toEqual([0, '']);
  }, 90_000);
});
