// What Pod Security admission does with an injected pod, as docs/injector.md ("Pod Security")
// says: the real API server's PodSecurity plugin runs after the mutating webhooks, so it judges
// the pod WITH meshlet-init (NET_ADMIN, NET_RAW, uid 0). deploy/'s MutatingWebhookConfiguration
// points at a real `meshlet injector` on this host; the app pod itself meets `restricted`.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterSkip, deployWebhookOnHost, eventually, namespace, startHostInjector, tempDir, useControlPlane, type HostInjector, type K8sObject } from './support.ts';

type Container = { name: string; [field: string]: unknown };
type Pod = K8sObject & { spec: { initContainers?: Container[]; containers: Container[]; [field: string]: unknown } };

/** A pod that Pod Security `restricted` admits as it is: non-root, seccomp, no capabilities, no escalation. */
function appPod(ns: string, name: string, labels: Record<string, string> = {}): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns, labels: { app: name, ...labels } },
    spec: {
      securityContext: { runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: 'RuntimeDefault' } },
      containers: [{ name: 'app', image: 'registry.example/app:1', ports: [{ containerPort: 8080 }], securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } } }],
    },
  };
}

/** docs/injector.md, "Pod Security": the refusal quoted for a `baseline` namespace, between backticks on its own line. */
function documentedBaselineRefusal(): string {
  const doc = readFileSync(new URL('../../docs/injector.md', import.meta.url), 'utf8');
  const m = /^`(pods "[^`]*violates PodSecurity "baseline:latest"[^`]*)`$/m.exec(doc);
  if (!m) throw new Error('docs/injector.md: no quoted `pods "…" is forbidden: violates PodSecurity "baseline:latest": …` line');
  return m[1]!;
}

const skip = clusterSkip();

describe.skipIf(skip)('Pod Security admission and the injected init container', () => {
  const cluster = useControlPlane();
  let work: Awaited<ReturnType<typeof tempDir>>;
  let injector: HostInjector | undefined;

  beforeAll(async () => {
    work = await tempDir('meshlet-cluster-pss-');
    const cp = cluster();
    injector = await startHostInjector(work.dir);
    await deployWebhookOnHost(cp, 'MutatingWebhookConfiguration', injector.url, injector.caPem);
    for (const level of ['privileged', 'baseline', 'restricted']) {
      await namespace(cp, `pss-${level}`, { 'meshlet.io/inject': 'enabled', 'pod-security.kubernetes.io/enforce': level });
    }
    // Enforce privileged, but warn and audit at baseline: admitted, with a warning.
    await namespace(cp, 'pss-warn', { 'meshlet.io/inject': 'enabled', 'pod-security.kubernetes.io/enforce': 'privileged', 'pod-security.kubernetes.io/warn': 'baseline', 'pod-security.kubernetes.io/audit': 'baseline' });
  });
  afterAll(async () => {
    await injector?.stop();
    await work?.cleanup();
  });

  const create = (pod: Pod) => cluster().kubectl(['create', '-f', '-'], { input: JSON.stringify(pod) });
  const initContainers = async (ns: string, name: string) => {
    const pod = JSON.parse(await cluster().kubectlOk(['-n', ns, 'get', 'pod', name, '-o', 'json'])) as Pod;
    return (pod.spec.initContainers ?? []).map((c) => c.name);
  };

  it('privileged: the injected pod is admitted', async () => {
    const r = await create(appPod('pss-privileged', 'orders'));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    expect(await initContainers('pss-privileged', 'orders')).toEqual(['meshlet-init', 'meshlet-proxy']);
  });

  it('baseline: refused for meshlet-init\'s NET_ADMIN and NET_RAW alone — the message docs/injector.md quotes', async () => {
    const r = await create(appPod('pss-baseline', 'orders'));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(documentedBaselineRefusal());
    // Nothing else of the injected pod violates baseline: running as root is allowed there.
    expect(r.stderr).toMatch(/violates PodSecurity "baseline:latest": non-default capabilities \(container "meshlet-init" must not include "NET_ADMIN", "NET_RAW" in securityContext\.capabilities\.add\)\s*$/);
  });

  it('baseline: a Deployment is stored, but its ReplicaSet cannot create a pod (ReplicaFailure, the same message)', async () => {
    const cp = cluster();
    const template = appPod('pss-baseline', 'orders');
    const deployment = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'orders', namespace: 'pss-baseline' },
      spec: { replicas: 1, selector: { matchLabels: { app: 'orders' } }, template: { metadata: { labels: template.metadata['labels'] }, spec: template.spec } },
    };
    const r = await cp.kubectl(['create', '-f', '-'], { input: JSON.stringify(deployment) });
    expect(r.code, r.stderr).toBe(0);
    // The template is not injected, so nothing warns or refuses at this point.
    expect(r.stderr).toBe('');
    type ReplicaSet = { status?: { replicas?: number; conditions?: { type: string; reason: string; message: string }[] } };
    const failure = await eventually(async () => {
      const sets = (JSON.parse(await cp.kubectlOk(['-n', 'pss-baseline', 'get', 'replicasets', '-l', 'app=orders', '-o', 'json'])) as { items: ReplicaSet[] }).items;
      return sets[0]?.status?.conditions?.find((c) => c.type === 'ReplicaFailure');
    }, "the ReplicaSet's ReplicaFailure condition", 60_000);
    expect(failure.reason).toBe('FailedCreate');
    expect(failure.message).toMatch(/^pods "orders-[a-z0-9]+-[a-z0-9]+" is forbidden: /);
    expect(failure.message.slice(failure.message.indexOf(' is forbidden: '))).toBe(documentedBaselineRefusal().slice(documentedBaselineRefusal().indexOf(' is forbidden: ')));
    expect((JSON.parse(await cp.kubectlOk(['-n', 'pss-baseline', 'get', 'pods', '-o', 'json'])) as { items: unknown[] }).items).toEqual([]);
  });

  it('restricted: refused, for the capabilities and for running as root', async () => {
    const r = await create(appPod('pss-restricted', 'orders'));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('violates PodSecurity "restricted:latest"');
    expect(r.stderr).toContain('container "meshlet-init" must not include "NET_ADMIN", "NET_RAW" in securityContext.capabilities.add');
    expect(r.stderr).toMatch(/runAsNonRoot != true|runAsUser=0/);
    // The sidecar itself is not named: it meets restricted.
    expect(r.stderr).not.toContain('"meshlet-proxy"');
  });

  it('restricted: the same pod opted out (label meshlet.io/inject=disabled) is admitted, so the init container is what was refused', async () => {
    const r = await create(appPod('pss-restricted', 'plain', { 'meshlet.io/inject': 'disabled' }));
    expect(r.code, r.stderr).toBe(0);
    expect(await initContainers('pss-restricted', 'plain')).toEqual([]);
  });

  it('warn=baseline over enforce=privileged: admitted and injected, with a warning naming meshlet-init', async () => {
    const r = await create(appPod('pss-warn', 'orders'));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('Warning: would violate PodSecurity "baseline:latest": non-default capabilities (container "meshlet-init" must not include "NET_ADMIN", "NET_RAW" in securityContext.capabilities.add)');
    expect(await initContainers('pss-warn', 'orders')).toEqual(['meshlet-init', 'meshlet-proxy']);
  });
});
