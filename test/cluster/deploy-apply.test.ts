// Suite 1: deploy/ as a real API server takes it. `kubectl apply -k` (kubectl's embedded
// kustomize) for real, not a dry run: RBAC, webhooks, PDBs, Deployments; the Deployments'
// Pods made by the real controllers pass Pod Security `restricted`; deploy/monitoring's objects
// and deploy/examples too. CRD kinds (PodMonitor, PrometheusRule) are applied against minimal
// CRDs installed here, which accept any spec: that checks their apiVersion, kind and metadata,
// not the operator's schema. The same for deploy-cert-manager/'s Certificates and Issuers.
// The bootstrap is docs/deploy.md's own commands, run as written (steps 1 and 5): the CA Secret
// the identity Deployment mounts, and the trust bundle ConfigMap injected pods mount.
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCa } from '../../src/control-plane/identity-service/ca.ts';
import { TRUST_BUNDLE_CONFIGMAP, TRUST_BUNDLE_KEY, VOLUMES } from '../../src/control-plane/injector/patch/pod-layout.ts';
import type { ControlPlane } from './control-plane.ts';
import { CLI, clusterSkip, DEPLOY, deployWebhookOnHost, eventually, kustomize, REPO, startHostInjector, tempDir, useControlPlane, type HostInjector, type K8sObject } from './support.ts';

type List<T> = { items: T[] };
type Deployment = K8sObject & { spec: { replicas: number }; status?: { replicas?: number } };
type Volume = { name: string; configMap?: { name: string; items?: { key: string; path: string }[]; optional?: boolean }; secret?: { secretName: string } };
type Container = { name: string; env?: { name: string; value?: string }[] };
type Pod = K8sObject & { spec: { initContainers?: Container[]; containers: Container[]; volumes?: Volume[] } };

/** The lines of docs/deploy.md's first fenced block under the heading starting with `heading`. */
function docCommands(heading: string): string[] {
  const doc = readFileSync(join(REPO, 'docs', 'deploy.md'), 'utf8');
  const start = doc.split('\n').findIndex((l) => l.startsWith(`## ${heading}`));
  if (start < 0) throw new Error(`docs/deploy.md: no section "## ${heading}"`);
  const lines = doc.split('\n').slice(start + 1);
  const section = lines.slice(0, lines.findIndex((l) => l.startsWith('## ')));
  const commands: string[] = [];
  let inBlock = false;
  for (const line of section) {
    if (line.startsWith('```')) {
      if (inBlock) break;
      inBlock = true;
    } else if (inBlock && line.trim()) commands.push(line.replace(/\s+#.*$/, '').trim());
  }
  return commands;
}

/**
 * Runs a documented command line as a user would in a checkout: `meshlet …` is the CLI, `kubectl …`
 * the built kubectl (a `|` pipes one kubectl into the next); `./x` is relative to `cwd`,
 * `deploy/…` to the repository. Returns stdout.
 */
async function runDocumented(cp: ControlPlane, line: string, cwd: string): Promise<string> {
  const args = (part: string) => part.trim().split(/\s+/).map((a) => a.replaceAll('./', `${cwd}/`).replace(/^deploy\//, `${REPO}/deploy/`));
  const [first, ...rest] = line.split(' | ');
  const [tool, ...argv] = args(first!);
  let out: string;
  if (tool === 'meshlet') {
    out = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, [CLI, ...argv], { cwd }, (err, stdout, stderr) => (err ? reject(new Error(`${line}: ${stderr || err.message}`)) : resolve(stdout))),
    );
  } else if (tool === 'kubectl') {
    out = await cp.kubectlOk(argv);
  } else {
    throw new Error(`docs/deploy.md: cannot run "${line}"`);
  }
  for (const next of rest) {
    const [t, ...a] = args(next);
    if (t !== 'kubectl') throw new Error(`docs/deploy.md: cannot run "${line}"`);
    out = await cp.kubectlOk(a, { input: out });
  }
  return out;
}

/** A CRD that stores any spec: enough for the API server to accept the object's kind and metadata. */
function minimalCrd(group: string, kind: string, plural: string, scope: 'Namespaced' | 'Cluster' = 'Namespaced'): K8sObject {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.${group}` },
    spec: {
      group,
      scope,
      names: { kind, plural, singular: kind.toLowerCase(), listKind: `${kind}List` },
      versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } }],
    },
  };
}

const skip = clusterSkip();

describe.skipIf(skip)('deploy/ on a real API server', () => {
  const cluster = useControlPlane();
  let work: Awaited<ReturnType<typeof tempDir>>;
  let injector: HostInjector | undefined;

  beforeAll(async () => {
    work = await tempDir('meshlet-cluster-deploy-');
  });
  afterAll(async () => {
    await injector?.stop();
    await work?.cleanup();
  });

  it('docs/deploy.md step 1, run as written: the CA Secret holds a CA the identity service reads, where deploy/ mounts it', async () => {
    const cp = cluster();
    const commands = docCommands('1.');
    expect(commands.map((c) => c.split(' ').slice(0, 3).join(' '))).toEqual(['meshlet ca init', 'meshlet ca init', 'kubectl create namespace', 'kubectl -n meshlet-system']);
    for (const c of commands) await runDocumented(cp, c, work.dir);
    const secret = JSON.parse(await cp.kubectlOk(['-n', 'meshlet-system', 'get', 'secret', 'meshlet-identity-ca', '-o', 'json'])) as K8sObject & { data: Record<string, string> };
    expect(Object.keys(secret.data).sort()).toEqual(['bundle.crt', 'ca.crt', 'ca.key', 'chain.crt']);
    // The Secret's files, as kubelet would write them into the volume: `meshlet identity` reads them as its CA.
    const mounted = join(work.dir, 'mounted-ca');
    await mkdir(mounted);
    for (const [file, b64] of Object.entries(secret.data)) await writeFile(join(mounted, file), Buffer.from(b64, 'base64'));
    const ca = await readCa(mounted);
    expect(ca.trustDomain).toBe('cluster.local');
    // …and the identity Deployment mounts that Secret at its MESHLET_CA_DIR.
    type Container = { env: { name: string; value: string }[]; volumeMounts: { name: string; mountPath: string }[] };
    const identity = (await kustomize(cp, DEPLOY)).find((o) => o.kind === 'Deployment' && o.metadata.name === 'meshlet-identity') as K8sObject & { spec: { template: { spec: { containers: Container[]; volumes: Volume[] } } } };
    const pod = identity.spec.template.spec;
    const caDir = pod.containers[0]!.env.find((e) => e.name === 'MESHLET_CA_DIR')!.value;
    const mount = pod.containers[0]!.volumeMounts.find((m) => m.mountPath === caDir)!;
    expect(pod.volumes.find((v) => v.name === mount.name)!.secret!.secretName).toBe('meshlet-identity-ca');
  });

  it("every kustomization in the repository renders with kubectl's kustomize", async () => {
    const cp = cluster();
    const dirs = [DEPLOY, join(DEPLOY, '..', 'deploy-cert-manager')].flatMap((root) =>
      readdirSync(root, { recursive: true, encoding: 'utf8' }).filter((f) => basename(f) === 'kustomization.yaml').map((f) => join(root, dirname(f))),
    );
    expect(dirs.length).toBeGreaterThanOrEqual(5);
    for (const dir of dirs) expect((await kustomize(cp, dir)).length, dir).toBeGreaterThan(0);
  });

  it('kubectl apply -k deploy/ creates every object of the base', async () => {
    const cp = cluster();
    const out = await cp.kubectlOk(['apply', '-k', DEPLOY]);
    const built = await kustomize(cp, DEPLOY);
    expect(built.length).toBeGreaterThan(10);
    for (const o of built) expect(out).toMatch(new RegExp(`/${o.metadata.name} (created|configured|unchanged)`));
    const stored = JSON.parse(await cp.kubectlOk(['get', '-k', DEPLOY, '-o', 'json'])) as List<K8sObject>;
    expect(stored.items.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual(built.map((o) => `${o.kind}/${o.metadata.name}`).sort());
    expect(new Set(built.map((o) => o.kind))).toEqual(
      new Set(['Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding', 'Deployment', 'Service', 'PodDisruptionBudget', 'MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration']),
    );
  });

  it("the Deployments' Pods, made by the real controllers, are admitted in meshlet-system (Pod Security restricted)", async () => {
    const cp = cluster();
    const deployments = (JSON.parse(await cp.kubectlOk(['-n', 'meshlet-system', 'get', 'deployments', '-o', 'json'])) as List<Deployment>).items;
    expect(deployments.map((d) => d.metadata.name).sort()).toEqual(['meshlet-identity', 'meshlet-injector']);
    for (const d of deployments) {
      await eventually(async () => {
        const now = JSON.parse(await cp.kubectlOk(['-n', 'meshlet-system', 'get', 'deployment', d.metadata.name, '-o', 'json'])) as Deployment;
        return now.status?.replicas === now.spec.replicas;
      }, `${d.spec.replicas} Pods of ${d.metadata.name}`, 90_000).catch(async (err: Error) => {
        // Say why: a Pod Security refusal shows up as the ReplicaSet's ReplicaFailure condition.
        const rs = await cp.kubectl(['-n', 'meshlet-system', 'get', 'replicasets', '-o', 'jsonpath={range .items[*]}{.metadata.name}: {.status.conditions}{"\\n"}{end}']);
        throw new Error(`${err.message}\n${rs.stdout}${rs.stderr}`);
      });
    }
    const pods = (JSON.parse(await cp.kubectlOk(['-n', 'meshlet-system', 'get', 'pods', '-o', 'json'])) as List<Pod>).items;
    expect(pods).toHaveLength(4);
    // meshlet-system is never injected.
    for (const p of pods) expect([...(p.spec.initContainers ?? []), ...p.spec.containers].map((c) => c.name)).not.toContain('meshlet-proxy');
  });

  it("the PodDisruptionBudgets select their Deployment's Pods", async () => {
    const cp = cluster();
    for (const name of ['meshlet-identity', 'meshlet-injector']) {
      await eventually(async () => {
        const pdb = JSON.parse(await cp.kubectlOk(['-n', 'meshlet-system', 'get', 'pdb', name, '-o', 'json'])) as { status?: { expectedPods?: number } };
        return pdb.status?.expectedPods === 2;
      }, `PDB ${name} to count 2 expected pods`, 60_000);
    }
  });

  it('RBAC: meshlet-identity may create TokenReviews, read Pods, Services and EndpointSlices (discovery) and its revocation-list ConfigMap, nothing else; the injector may do nothing', async () => {
    const cp = cluster();
    const canI = async (as: string, ...what: string[]) => (await cp.kubectl(['auth', 'can-i', ...what, `--as=system:serviceaccount:meshlet-system:${as}`])).stdout.trim();
    expect(await canI('meshlet-identity', 'create', 'tokenreviews.authentication.k8s.io')).toBe('yes');
    expect(await canI('meshlet-identity', 'get', 'secrets', '-n', 'meshlet-system')).toBe('no');
    // Discovery (docs/discovery.md): read-only, cluster-wide.
    for (const resource of ['pods', 'services', 'endpointslices.discovery.k8s.io']) {
      for (const verb of ['get', 'list', 'watch']) expect(await canI('meshlet-identity', verb, resource, '--all-namespaces'), `${verb} ${resource}`).toBe('yes');
    }
    expect(await canI('meshlet-identity', 'update', 'pods', '-n', 'default')).toBe('no');
    expect(await canI('meshlet-identity', 'list', 'configmaps', '--all-namespaces')).toBe('no');
    // The revocation list (docs/revocation.md): that one ConfigMap of its namespace, read-only.
    for (const verb of ['get', 'list', 'watch']) expect(await canI('meshlet-identity', verb, 'configmaps/meshlet-revocations', '-n', 'meshlet-system'), `${verb} the list`).toBe('yes');
    expect(await canI('meshlet-identity', 'update', 'configmaps/meshlet-revocations', '-n', 'meshlet-system')).toBe('no');
    expect(await canI('meshlet-identity', 'get', 'configmaps/meshlet-trust-bundle', '-n', 'meshlet-system')).toBe('no');
    expect(await canI('meshlet-identity', 'list', 'configmaps', '-n', 'meshlet-system')).toBe('no');
    expect(await canI('meshlet-identity', 'get', 'configmaps/meshlet-revocations', '-n', 'default')).toBe('no');
    expect(await canI('meshlet-identity', 'list', 'endpoints', '--all-namespaces')).toBe('no');
    expect(await canI('meshlet-injector', 'create', 'tokenreviews.authentication.k8s.io')).toBe('no');
    expect(await canI('meshlet-injector', 'get', 'secrets', '-n', 'meshlet-system')).toBe('no');
  });

  it('the webhook configurations are stored as deploy/ wrote them', async () => {
    const cp = cluster();
    const built = await kustomize(cp, DEPLOY);
    for (const kind of ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration']) {
      const want = built.find((o) => o.kind === kind)!;
      const got = JSON.parse(await cp.kubectlOk(['get', kind.toLowerCase(), want.metadata.name, '-o', 'json'])) as K8sObject;
      expect(got['webhooks']).toMatchObject(want['webhooks'] as object);
    }
  });

  it('deploy/monitoring: the dashboard ConfigMap, and PodMonitor/PrometheusRule against minimal CRDs', async () => {
    const cp = cluster();
    const crds = [minimalCrd('monitoring.coreos.com', 'PodMonitor', 'podmonitors'), minimalCrd('monitoring.coreos.com', 'PrometheusRule', 'prometheusrules')];
    await cp.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: crds }) });
    await cp.kubectlOk(['wait', '--for=condition=Established', '--timeout=60s', ...crds.map((c) => `crd/${c.metadata.name}`)]);
    const dir = join(DEPLOY, 'monitoring');
    await cp.kubectlOk(['apply', '-k', dir]);
    const built = await kustomize(cp, dir);
    expect(built.map((o) => o.kind).sort()).toEqual(['ConfigMap', 'PodMonitor', 'PodMonitor', 'PrometheusRule']);
    const stored = JSON.parse(await cp.kubectlOk(['get', '-k', dir, '-o', 'json'])) as List<K8sObject>;
    expect(stored.items).toHaveLength(built.length);
  });

  it("deploy/examples, installed with docs/deploy.md step 5's commands: accepted, its policy passes the real /validate, the controllers' Pods get the sidecar and the trust bundle they mount exists", async () => {
    const cp = cluster();
    // deploy/'s webhooks, pointed at a real injector on this host (no kubelet runs one in-cluster).
    injector = await startHostInjector(work.dir);
    await deployWebhookOnHost(cp, 'MutatingWebhookConfiguration', injector.url, injector.caPem);
    await deployWebhookOnHost(cp, 'ValidatingWebhookConfiguration', injector.url, injector.caPem);
    const dir = join(DEPLOY, 'examples');
    // Step 3's command for any namespace is step 5's for demo.
    const step3 = docCommands('3.');
    expect(step3).toHaveLength(1);
    const commands = docCommands('5.').filter((c) => !c.includes('rollout status'));
    expect(commands).toContain(step3[0]!.replace('NAMESPACE', 'demo'));
    expect(commands.at(-1)).toBe('kubectl apply -k deploy/examples/');
    // The namespace, the trust bundle from step 1's ./mesh-intermediate (run above), then the
    // example; failurePolicy Fail: the policy ConfigMap is stored only if the real /validate allowed it.
    for (const c of commands) await runDocumented(cp, c, work.dir);
    const built = await kustomize(cp, dir);
    const stored = JSON.parse(await cp.kubectlOk(['get', '-k', dir, '-o', 'json'])) as List<K8sObject>;
    expect(stored.items).toHaveLength(built.length);
    const bundle = JSON.parse(await cp.kubectlOk(['-n', 'demo', 'get', 'configmap', TRUST_BUNDLE_CONFIGMAP, '-o', 'json'])) as K8sObject & { data: Record<string, string> };
    // The roots: what `meshlet ca init` wrote as the root's bundle, which the intermediate's bundle.crt repeats.
    expect(bundle.data).toEqual({ [TRUST_BUNDLE_KEY]: readFileSync(join(work.dir, 'mesh-root', 'bundle.crt'), 'utf8') });
    for (const app of ['orders', 'frontend']) {
      const pod = await eventually(async () => {
        const pods = (JSON.parse(await cp.kubectlOk(['-n', 'demo', 'get', 'pods', '-l', `app=${app}`, '-o', 'json'])) as List<Pod>).items;
        return pods[0];
      }, `a Pod of Deployment ${app}`, 90_000);
      expect((pod.spec.initContainers ?? []).map((c) => c.name).slice(0, 2)).toEqual(['meshlet-init', 'meshlet-proxy']);
      expect((pod.metadata['annotations'] as Record<string, string>)['meshlet.io/status']).toBeDefined();
      // The required trust volume names a ConfigMap of the pod's namespace that has every key it mounts.
      const trust = pod.spec.volumes!.find((v) => v.name === VOLUMES.trust.name)!;
      expect(trust.configMap!.name).toBe(TRUST_BUNDLE_CONFIGMAP);
      expect(trust.configMap!.optional).toBeUndefined();
      for (const item of trust.configMap!.items!) expect(Object.keys(bundle.data)).toContain(item.key);
      // Federation (meshlet-ca source): an optional ConfigMap the namespace does not have, stored as
      // the injector wrote it; revocation comes from the identity service, nothing mounted for it.
      expect(pod.spec.volumes!.find((v) => v.name === VOLUMES.federation.name)).toEqual({ name: VOLUMES.federation.name, configMap: { name: 'meshlet-federation', optional: true, defaultMode: 420 } });
      expect(pod.spec.volumes!.find((v) => v.name === VOLUMES.revocations.name)).toBeUndefined();
      const proxyEnv = pod.spec.initContainers!.find((c) => c.name === 'meshlet-proxy')!.env!;
      expect(proxyEnv.find((e) => e.name === 'MESHLET_REVOCATION_LIST')?.value).toBe('meshlet-ca');
      expect(proxyEnv.find((e) => e.name === 'MESHLET_FEDERATION_BUNDLES')?.value).toBe(VOLUMES.federation.mountPath);
    }
    // …which works because the identity service deploy/ installed has a list configured: the
    // meshlet-revocations ConfigMap of its namespace, read through the API server, which RBAC
    // lets its ServiceAccount get, list and watch — that ConfigMap only.
    const identity = JSON.parse(await cp.kubectlOk(['-n', 'meshlet-system', 'get', 'deployment', 'meshlet-identity', '-o', 'json'])) as { spec: { template: { spec: Pod['spec'] } } };
    expect(identity.spec.template.spec.containers[0]!.env!.find((e) => e.name === 'MESHLET_IDENTITY_REVOCATION_LIST')?.value).toBe('configmap:meshlet-revocations');
    // (RBAC for it: the RBAC test below.)
  });

  it('deploy-cert-manager/ renders (no kustomize cycle) and applies against minimal cert-manager CRDs', async () => {
    const cp = cluster();
    const crds = [minimalCrd('cert-manager.io', 'Certificate', 'certificates'), minimalCrd('cert-manager.io', 'Issuer', 'issuers')];
    await cp.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: crds }) });
    await cp.kubectlOk(['wait', '--for=condition=Established', '--timeout=60s', ...crds.map((c) => `crd/${c.metadata.name}`)]);
    const dir = join(DEPLOY, '..', 'deploy-cert-manager');
    const built = await kustomize(cp, dir);
    expect(built.filter((o) => o.apiVersion === 'cert-manager.io/v1').map((o) => o.kind).sort()).toEqual(['Certificate', 'Certificate', 'Issuer', 'Issuer']);
    await cp.kubectlOk(['apply', '-k', dir]);
    for (const kind of ['mutatingwebhookconfiguration/meshlet-injector', 'validatingwebhookconfiguration/meshlet-policy-validation']) {
      const got = JSON.parse(await cp.kubectlOk(['get', kind, '-o', 'json'])) as K8sObject;
      expect((got.metadata['annotations'] as Record<string, string>)['cert-manager.io/inject-ca-from']).toBe('meshlet-system/meshlet-injector-tls');
    }
  });
});
