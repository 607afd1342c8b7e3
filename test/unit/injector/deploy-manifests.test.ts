import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { Service } from 'kubernetes-models/v1/Service';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import { ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import { Role } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import { RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import { MutatingWebhookConfiguration } from 'kubernetes-models/admissionregistration.k8s.io/v1/MutatingWebhookConfiguration';
import { ValidatingWebhookConfiguration } from 'kubernetes-models/admissionregistration.k8s.io/v1/ValidatingWebhookConfiguration';
import { DEFAULT_INJECTION_SETTINGS } from '../../../src/control-plane/injector/patch/index.ts';
import { DEFAULT_POLICY_CONFIGMAP, IMAGE_CLI, PROXY_UID, REVOCATION_LIST_FILE, TRUST_BUNDLE_CONFIGMAP, TRUST_BUNDLE_KEY } from '../../../src/control-plane/injector/patch/pod-layout.ts';
import { readIdentityConfig } from '../../../src/control-plane/identity-service/config.ts';
import { REVOCATION_CONFIGMAP_KEY, REVOCATION_CONFIGMAP_NAME } from '../../../src/data-plane/identity/revocation/revocation-list-edit.ts';
import { injectManifest } from '../../../src/control-plane/injector/workloads.ts';
import { runCli } from './cli-support.ts';

/** Every manifest under deploy/ against the Kubernetes schema, plus the properties the design promises. */
const DEPLOY = join(dirname(fileURLToPath(import.meta.url)), '../../../deploy');
/** The cert-manager overlay lives beside the base (kustomize refuses an overlay inside its own base). */
const CERT_MANAGER_OVERLAY = join(DEPLOY, '../deploy-cert-manager');
const OVERLAY_PREFIX = `${relative(DEPLOY, CERT_MANAGER_OVERLAY)}/`;
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  Namespace,
  ServiceAccount,
  Service,
  ConfigMap,
  Deployment,
  PodDisruptionBudget,
  ClusterRole,
  ClusterRoleBinding,
  Role,
  RoleBinding,
  MutatingWebhookConfiguration,
  ValidatingWebhookConfiguration,
};
/** Kinds that are not Kubernetes built-ins (no schema in kubernetes-models), allowed only in the cert-manager overlay. */
const CERT_MANAGER_KINDS = new Set(['Issuer', 'Certificate']);
/** Prometheus Operator kinds, allowed only in the monitoring folder. */
const PROMETHEUS_OPERATOR_KINDS = new Set(['PodMonitor', 'ServiceMonitor', 'PrometheusRule']);
/** Files under deploy/ that are not Kubernetes objects (a Prometheus scrape config snippet). */
const NOT_KUBERNETES_OBJECTS = new Set(['monitoring/prometheus-scrape-config.yaml']);

type Doc = { file: string; obj: any };

function yamlFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return yamlFiles(path);
    return /\.ya?ml$/.test(name) ? [path] : [];
  });
}

const files = [...yamlFiles(DEPLOY), ...yamlFiles(CERT_MANAGER_OVERLAY)];
const kustomizations = files.filter((f) => /kustomization\.ya?ml$/.test(f));
const kustomization = (file: string) => parseAllDocuments(readFileSync(file, 'utf8'))[0]!.toJS();
/** Transformer configurations (`configurations:` of a kustomization): kustomize's input, not objects. */
const transformerConfigs = kustomizations.flatMap((k) => ((kustomization(k).configurations ?? []) as string[]).map((c) => join(dirname(k), c)));
const docs: Doc[] = files
  .filter((f) => !kustomizations.includes(f) && !transformerConfigs.includes(f) && !NOT_KUBERNETES_OBJECTS.has(relative(DEPLOY, f)))
  .flatMap((file) => parseAllDocuments(readFileSync(file, 'utf8')).map((d) => ({ file: relative(DEPLOY, file), obj: d.toJS() })));
const base = (kind: string, name: string) => docs.find((d) => d.obj.kind === kind && d.obj.metadata?.name === name && !d.file.startsWith('examples/'))?.obj;

describe('deploy/ manifests', () => {
  it('finds the manifests', () => {
    expect(docs.length).toBeGreaterThan(15);
  });

  for (const { file, obj } of docs) {
    it(`${file}: ${obj.kind}/${obj.metadata?.name} validates against the Kubernetes schema`, () => {
      if (CERT_MANAGER_KINDS.has(obj.kind)) {
        expect(file.startsWith(OVERLAY_PREFIX)).toBe(true);
        expect(obj.apiVersion).toBe('cert-manager.io/v1');
        return;
      }
      if (PROMETHEUS_OPERATOR_KINDS.has(obj.kind)) {
        expect(file.startsWith('monitoring/')).toBe(true);
        expect(obj.apiVersion).toBe('monitoring.coreos.com/v1');
        return;
      }
      const Model = MODELS[obj.kind];
      expect(Model, `no schema model for ${obj.kind}`).toBeDefined();
      expect(() => new Model!(obj as never).validate()).not.toThrow();
    });
  }

  it('every kustomization lists only files or kustomize directories that exist', () => {
    for (const k of kustomizations) {
      const spec = kustomization(k);
      for (const r of spec.resources as string[]) {
        const path = join(dirname(k), r);
        expect(existsSync(path), `${relative(DEPLOY, k)} -> ${r}`).toBe(true);
        if (statSync(path).isDirectory()) expect(existsSync(join(path, 'kustomization.yaml')), `${r} has no kustomization.yaml`).toBe(true);
      }
    }
    for (const c of transformerConfigs) expect(existsSync(c), relative(DEPLOY, c)).toBe(true);
  });

  it('the base kustomization installs every control-plane manifest and the policy webhook', () => {
    const spec = parseAllDocuments(readFileSync(join(DEPLOY, 'kustomization.yaml'), 'utf8'))[0]!.toJS();
    const listed = new Set((spec.resources as string[]).map((r) => r.replace(/\/$/, '')));
    for (const f of files.map((p) => relative(DEPLOY, p))) {
      if (/^(examples|policy|monitoring|logging)\//.test(f) || f.startsWith(OVERLAY_PREFIX) || f === 'kustomization.yaml' || transformerConfigs.includes(join(DEPLOY, f))) continue;
      expect(listed.has(f), `${f} is not in deploy/kustomization.yaml`).toBe(true);
    }
    expect(listed.has('policy')).toBe(true);
  });

  it('the mutating webhook is configured as the design says', () => {
    const config = base('MutatingWebhookConfiguration', 'meshlet-injector');
    const [hook] = config.webhooks;
    expect(hook).toMatchObject({ admissionReviewVersions: ['v1'], sideEffects: 'None', timeoutSeconds: 5, reinvocationPolicy: 'IfNeeded', failurePolicy: 'Fail' });
    expect(hook.rules).toEqual([{ apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], operations: ['CREATE'], scope: 'Namespaced' }]);
    expect(hook.namespaceSelector.matchExpressions).toContainEqual({ key: 'meshlet.io/inject', operator: 'In', values: ['enabled'] });
    expect(hook.namespaceSelector.matchExpressions).toContainEqual({ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', 'kube-public', 'meshlet-system'] });
    // The clientConfig reaches the injector: Service meshlet-injector:443 -> the container's webhook port.
    expect(hook.clientConfig.service).toEqual({ name: 'meshlet-injector', namespace: 'meshlet-system', path: '/mutate', port: 443 });
    const service = base('Service', 'meshlet-injector');
    expect(service.spec.ports).toEqual([{ name: 'https-webhook', port: 443, targetPort: 'webhook' }]);
    const injector = base('Deployment', 'meshlet-injector').spec.template.spec;
    expect(injector.containers[0].ports).toEqual([{ name: 'webhook', containerPort: 8443 }]);
  });

  it('components that block pod creation or SVID renewal run 2 replicas behind a PDB', () => {
    for (const name of ['meshlet-injector', 'meshlet-identity']) {
      const deployment = base('Deployment', name);
      expect(deployment.spec.replicas).toBe(2);
      const pdb = base('PodDisruptionBudget', name);
      expect(pdb.spec.minAvailable).toBe(1);
      expect(pdb.spec.selector.matchLabels).toEqual(deployment.spec.selector.matchLabels);
      const pod = deployment.spec.template.spec;
      expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: PROXY_UID });
      expect(pod.containers[0].securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    }
  });

  it('Secret volumes are readable by the non-root control plane as kubelet writes them (fsGroup)', () => {
    // kubelet writes Secret files root:root with defaultMode; only with the pod's fsGroup does it
    // chown them to that group and OR the mode with 0440 (pkg/volume SetVolumeOwnership, read-only).
    for (const name of ['meshlet-injector', 'meshlet-identity']) {
      const pod = base('Deployment', name).spec.template.spec;
      const { runAsUser, runAsGroup, fsGroup } = pod.securityContext;
      expect(runAsUser).not.toBe(0);
      const secrets = pod.volumes.filter((v: any) => v.secret);
      expect(secrets.length).toBeGreaterThan(0);
      for (const volume of secrets) {
        const declared = volume.secret.defaultMode ?? 0o644;
        const group = fsGroup ?? 0;
        const mode = fsGroup === undefined ? declared : declared | 0o440;
        const readable = group === runAsGroup && (mode & 0o040) !== 0;
        expect({ pod: name, volume: volume.name, readable }).toEqual({ pod: name, volume: volume.name, readable: true });
        // Keys: never writable, never readable by other users.
        expect(mode & 0o027).toBe(0);
      }
    }
  });

  it('the identity service enforces and publishes a revocation list, always configured, from an optional ConfigMap read through the API server (what MESHLET_REVOCATION_LIST=meshlet-ca sidecars need to start)', () => {
    const pod = base('Deployment', 'meshlet-identity').spec.template.spec;
    const container = pod.containers[0];
    const env = Object.fromEntries(container.env.map((e: { name: string; value: string }) => [e.name, e.value]));
    // The identity service's own reader accepts the Deployment's environment as written.
    const config = readIdentityConfig(env);
    // The ConfigMap `meshlet identity revoke --configmap meshlet-system` prints, in the service's own namespace.
    expect(config.revocationList).toBe(`configmap:${REVOCATION_CONFIGMAP_NAME}`);
    // Nothing mounted for it: the list is not read from a volume (kubelet's sync would delay it).
    expect(JSON.stringify(pod.volumes)).not.toContain(REVOCATION_CONFIGMAP_NAME);
    expect(container.volumeMounts.map((m: { name: string }) => m.name)).toEqual(['ca']);
    // The key the files/workload-api sidecars' mounted path ends with is the one the service reads.
    expect(basename(REVOCATION_LIST_FILE)).toBe(REVOCATION_CONFIGMAP_KEY);
    // The Deployment keeps its security settings with the new volume.
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: PROXY_UID, runAsGroup: PROXY_UID, fsGroup: PROXY_UID });
    expect(container.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
    // deploy/ renders no list: a fresh install revokes nobody.
    expect(docs.filter((d) => d.obj.kind === 'ConfigMap' && d.obj.metadata.name === REVOCATION_CONFIGMAP_NAME)).toEqual([]);
  });

  it('no webhook that fails closed can block kube-system or meshlet-system (where the injector itself runs)', () => {
    const configs = docs.filter((d) => ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration'].includes(d.obj.kind) && !d.file.startsWith('examples/'));
    expect(configs.length).toBeGreaterThanOrEqual(2);
    for (const { obj } of configs) {
      for (const hook of obj.webhooks) {
        const excluded = (hook.namespaceSelector?.matchExpressions ?? []).find((e: any) => e.key === 'kubernetes.io/metadata.name' && e.operator === 'NotIn');
        expect({ webhook: hook.name, excluded: excluded?.values ?? [] }).toMatchObject({ webhook: hook.name, excluded: expect.arrayContaining(['kube-system', 'meshlet-system']) });
      }
    }
  });

  it('RBAC is least privilege: the CA may only create TokenReviews, read Pods, Services, EndpointSlices (discovery) and its revocation-list ConfigMap, the injector has no API access', () => {
    expect(base('ClusterRole', 'meshlet-identity-tokenreview').rules).toEqual([{ apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] }]);
    expect(base('ClusterRole', 'meshlet-identity-discovery').rules).toEqual([
      { apiGroups: [''], resources: ['pods', 'services'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] },
    ]);
    // The revocation list: one ConfigMap, by name, read-only, in the service's own namespace.
    expect(base('Role', 'meshlet-identity-revocations')).toMatchObject({ metadata: { namespace: 'meshlet-system' }, rules: [{ apiGroups: [''], resources: ['configmaps'], resourceNames: [REVOCATION_CONFIGMAP_NAME], verbs: ['get', 'list', 'watch'] }] });
    expect(base('RoleBinding', 'meshlet-identity-revocations')).toMatchObject({ metadata: { namespace: 'meshlet-system' }, roleRef: { kind: 'Role', name: 'meshlet-identity-revocations' }, subjects: [{ kind: 'ServiceAccount', name: 'meshlet-identity', namespace: 'meshlet-system' }] });
    expect(docs.filter((d) => ['Role', 'RoleBinding', 'ClusterRole', 'ClusterRoleBinding'].includes(d.obj.kind)).map((d) => d.obj.metadata.name)).toEqual(['meshlet-identity-tokenreview', 'meshlet-identity-tokenreview', 'meshlet-identity-discovery', 'meshlet-identity-discovery', 'meshlet-identity-revocations', 'meshlet-identity-revocations']);
    expect(base('ServiceAccount', 'meshlet-injector').automountServiceAccountToken).toBe(false);
  });

  it('the injector injects the same image it runs, and one images: setting changes both (rendered: test/cluster/deploy-images.test.ts)', () => {
    const container = base('Deployment', 'meshlet-injector').spec.template.spec.containers[0];
    expect(container.env.find((e: { name: string }) => e.name === 'MESHLET_INJECTOR_PROXY_IMAGE').value).toBe(container.image);
    // kustomize's images transformer is told to rewrite container env values too.
    const spec = kustomization(join(DEPLOY, 'kustomization.yaml'));
    expect(spec.images).toEqual([{ name: 'ghcr.io/meshlet/meshlet', newTag: container.image.split(':')[1] }]);
    expect(spec.configurations).toEqual(['kustomizeconfig/images.yaml']);
    expect(kustomization(join(DEPLOY, 'kustomizeconfig/images.yaml'))).toEqual({ images: [{ path: 'spec/template/spec/containers/env/value', kind: 'Deployment' }] });
  });

  it('the cert-manager certificate has the Service DNS SAN the API server checks', () => {
    const cert = docs.find((d) => d.obj.kind === 'Certificate' && d.obj.metadata.name === 'meshlet-injector-tls')!.obj;
    expect(cert.spec.dnsNames).toContain('meshlet-injector.meshlet-system.svc');
    expect(cert.spec.secretName).toBe('meshlet-injector-tls');
  });

  it('the Dockerfile builds the image the manifests assume', () => {
    const dockerfile = readFileSync(join(DEPLOY, 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^FROM node:24-slim$/m);
    // The image runs the production artifact (scripts/build-dist.mjs) with production dependencies only.
    expect(dockerfile).toMatch(/node scripts\/build-dist\.mjs/);
    expect(dockerfile).toMatch(/npm prune --omit=dev/);
    expect(dockerfile).toMatch(/^COPY --from=build \/app\/dist\/ \.\/$/m);
    expect(dockerfile).toMatch(/install -y --no-install-recommends iptables/);
    expect(dockerfile).toMatch(new RegExp(`^USER ${PROXY_UID}:${PROXY_UID}$`, 'm'));
    // The postStart hook of the regular-container sidecar execs IMAGE_CLI: it must be the entry point.
    expect(dockerfile).toContain(`ENTRYPOINT ${JSON.stringify([...IMAGE_CLI])}`.replaceAll(',', ', '));
  });
});

describe('deploy/examples', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'meshlet-example-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const example = docs.filter((d) => d.file.startsWith('examples/'));

  it('every workload is injected as the webhook would, and the result is a valid Deployment', () => {
    const namespace = example.find((d) => d.obj.kind === 'Namespace')!.obj;
    expect(namespace.metadata.labels['meshlet.io/inject']).toBe('enabled');
    const deployments = example.filter((d) => d.obj.kind === 'Deployment');
    expect(deployments.map((d) => d.obj.metadata.name).sort()).toEqual(['frontend', 'orders']);
    for (const { obj } of deployments) {
      const { manifest } = injectManifest(obj, 'default', DEFAULT_INJECTION_SETTINGS);
      const pod = (manifest as any).spec.template.spec;
      expect(pod.initContainers.map((c: { name: string }) => c.name)).toEqual(['meshlet-init', 'meshlet-proxy']);
      expect(() => new Deployment(manifest as never).validate()).not.toThrow();
    }
  });

  it('the policy allows frontend GET /orders and denies frontend POST /orders (what docs/deploy.md promises)', async () => {
    const configMap = example.find((d) => d.obj.kind === 'ConfigMap')!.obj;
    expect(configMap.metadata.name).toBe(DEFAULT_POLICY_CONFIGMAP);
    expect(configMap.metadata.labels['meshlet.io/policy']).toBe('true');
    const file = join(dir, 'policy.yaml');
    await writeFile(file, configMap.data['policy.yaml']);
    const explain = async (method: string) => {
      const { code, stdout } = await runCli(['policy', 'explain', file, '--from', 'spiffe://cluster.local/ns/demo/sa/frontend', '--port', '8080', '--method', method, '--path', '/orders', '--output', 'json']);
      expect(code).toBe(0);
      return JSON.parse(stdout);
    };
    expect(await explain('GET')).toMatchObject({ decision: 'allow', route: 'list-orders' });
    const denied = await explain('POST');
    expect(denied).toMatchObject({ decision: 'deny', route: null });
    // The 403 body docs/deploy.md shows names this very decision (route and reason); that a
    // sidecar sends exactly that body is test/integration/sidecar/denial-body-docs.test.ts.
    const line = readFileSync(join(DEPLOY, '../docs/deploy.md'), 'utf8').split('\n').find((l) => l.startsWith('{"error"') && l.endsWith(' 403'))!;
    expect(JSON.parse(line.slice(0, -' 403'.length))).toEqual({ error: { code: 'MESHLET_DENIED', message: 'request denied by policy', route: denied.route, reason: denied.reason } });
  });

  it('the example namespace enforces Pod Security privileged, the only level that admits the injected init container (docs/injector.md#pod-security)', () => {
    const namespace = example.find((d) => d.obj.kind === 'Namespace')!.obj;
    expect(namespace.metadata.labels['pod-security.kubernetes.io/enforce']).toBe('privileged');
    const orders = example.find((d) => d.obj.kind === 'Deployment' && d.obj.metadata.name === 'orders')!.obj;
    const init = (injectManifest(orders, 'default', DEFAULT_INJECTION_SETTINGS).manifest as any).spec.template.spec.initContainers[0];
    expect(init.name).toBe('meshlet-init');
    expect(init.securityContext).toMatchObject({ runAsUser: 0, capabilities: { add: ['NET_ADMIN', 'NET_RAW'] } });
  });

  it("docs/deploy.md's trust bundle command creates the ConfigMap and key the injector mounts (run for real: test/cluster/deploy-apply.test.ts)", () => {
    const doc = readFileSync(join(DEPLOY, '../docs/deploy.md'), 'utf8');
    const commands = doc.split('\n').filter((l) => / create configmap meshlet-trust-bundle /.test(l));
    expect(commands.length).toBe(2);
    for (const c of commands) expect(c).toMatch(new RegExp(`^kubectl -n \\S+ create configmap ${TRUST_BUNDLE_CONFIGMAP} --from-file=${TRUST_BUNDLE_KEY.replace('.', '\\.')}=\\./mesh-intermediate/bundle\\.crt$`));
    // …and deploy/ renders no such ConfigMap (it cannot: the roots are the cluster's own, made at bootstrap).
    expect(docs.filter((d) => d.obj.kind === 'ConfigMap' && d.obj.metadata.name === TRUST_BUNDLE_CONFIGMAP)).toEqual([]);
  });
});
