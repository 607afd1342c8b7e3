// `meshlet policy netpol` against a real kube-apiserver (docs/network-policy.md): the output
// for the page's example is accepted by a server-side dry run, created, read back unchanged,
// and re-applied as unchanged; a pod injected through deploy/'s real mutating webhook carries
// the meshlet.io/service-account label, so the generated podSelector selects it (no kubelet
// here: the selection is asked of the API server with the NetworkPolicy's own selector).
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { main } from '../../src/cli/main.ts';
import { docBlock, NETPOL_DOC } from '../unit/netpol/support.ts';
import { clusterSkip, deployWebhookOnHost, namespace, startHostInjector, tempDir, useControlPlane, type HostInjector, type K8sObject } from './support.ts';

type NetworkPolicy = K8sObject & { spec: { podSelector: { matchLabels?: Record<string, string> }; [k: string]: unknown } };

/** `meshlet policy netpol ARGS` in-process: stdout, stderr, exit status. */
async function netpol(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  let stdout = '';
  let stderr = '';
  out.on('data', (d) => (stdout += d));
  err.on('data', (d) => (stderr += d));
  const code = await main(['policy', 'netpol', ...args], { stdout: out, stderr: err, stdin: new PassThrough() });
  return { code, stdout, stderr };
}

const selector = (np: NetworkPolicy) => Object.entries(np.spec.podSelector.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`).join(',');

const skip = clusterSkip();

describe.skipIf(skip)('generated NetworkPolicies on a real API server', () => {
  const cluster = useControlPlane();
  let work: Awaited<ReturnType<typeof tempDir>>;
  let injector: HostInjector;
  let generated: NetworkPolicy[];
  let yamlText: string;

  beforeAll(async () => {
    work = await tempDir('meshlet-cluster-netpol-');
    const file = join(work.dir, 'policy.yaml');
    await writeFile(file, docBlock(readFileSync(NETPOL_DOC, 'utf8'), 'netpol-example-policy').body);
    const r = await netpol([file]);
    expect(r.code, r.stderr).toBe(0);
    yamlText = r.stdout;
    generated = parseAllDocuments(yamlText).map((d) => d.toJS() as NetworkPolicy);
    expect(generated.length).toBeGreaterThan(0);
    const cp = cluster();
    // The example's namespace, opted in to injection; the namespaces its rules name need not exist.
    await namespace(cp, 'shop', { 'meshlet.io/inject': 'enabled' });
    injector = await startHostInjector(work.dir);
    await deployWebhookOnHost(cp, 'MutatingWebhookConfiguration', injector.url, injector.caPem);
  });
  afterAll(async () => {
    await injector?.stop();
    await work?.cleanup();
  });

  it('a server-side dry run accepts every object (schema, defaults, admission)', async () => {
    const out = await cluster().kubectlOk(['apply', '--dry-run=server', '-f', '-', '-o', 'name'], { input: yamlText });
    expect(out.trim().split('\n').sort()).toEqual(generated.map((np) => `networkpolicy.networking.k8s.io/${np.metadata.name}`).sort());
  });

  it('created, each reads back with the spec as generated', async () => {
    await cluster().kubectlOk(['apply', '-f', '-'], { input: yamlText });
    for (const np of generated) {
      const stored = JSON.parse(await cluster().kubectlOk(['-n', np.metadata.namespace!, 'get', 'networkpolicy', np.metadata.name, '-o', 'json'])) as NetworkPolicy;
      expect(stored.spec).toEqual(np.spec);
      expect(stored.metadata['labels']).toEqual(np.metadata['labels']);
      expect(stored.metadata['annotations']).toMatchObject(np.metadata['annotations'] as Record<string, string>);
    }
  });

  it('generated again and re-applied: unchanged (deterministic output)', async () => {
    const again = await netpol([join(work.dir, 'policy.yaml')]);
    expect(again.stdout).toBe(yamlText);
    const out = await cluster().kubectlOk(['apply', '-f', '-'], { input: again.stdout });
    for (const np of generated) expect(out).toContain(`networkpolicy.networking.k8s.io/${np.metadata.name} unchanged`);
  });

  it('a pod injected by the real webhook carries the label, and the NetworkPolicy selects it', async () => {
    const cp = cluster();
    await cp.kubectlOk(['-n', 'shop', 'create', 'serviceaccount', 'orders']);
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'orders', namespace: 'shop', labels: { app: 'orders', 'meshlet.io/service-account': 'payments' } },
      spec: { serviceAccountName: 'orders', containers: [{ name: 'app', image: 'app', ports: [{ containerPort: 8080 }] }] },
    };
    await cp.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(pod) });
    const stored = JSON.parse(await cp.kubectlOk(['-n', 'shop', 'get', 'pod', 'orders', '-o', 'json'])) as { metadata: { labels: Record<string, string> } };
    // The value the pod claimed is replaced by its real ServiceAccount.
    expect(stored.metadata.labels).toEqual({ app: 'orders', 'meshlet.io/service-account': 'orders' });
    const orders = generated.find((np) => np.spec.podSelector.matchLabels?.['meshlet.io/service-account'] === 'orders');
    expect(orders, 'the example selects serviceAccount orders').toBeDefined();
    const selected = await cp.kubectlOk(['-n', 'shop', 'get', 'pods', '-l', selector(orders!), '-o', 'name']);
    expect(selected.trim()).toBe('pod/orders');
    // A pod of another ServiceAccount is not selected, whatever it was called.
    await cp.kubectlOk(['-n', 'shop', 'create', 'serviceaccount', 'payments']);
    await cp.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify({ ...pod, metadata: { ...pod.metadata, name: 'payments', labels: { app: 'orders' } }, spec: { ...pod.spec, serviceAccountName: 'payments' } }) });
    expect((await cp.kubectlOk(['-n', 'shop', 'get', 'pods', '-l', selector(orders!), '-o', 'name'])).trim()).toBe('pod/orders');
  });
});
