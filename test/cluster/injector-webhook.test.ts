// Suite 2: a real `meshlet injector` on the host, registered by deploy/'s
// MutatingWebhookConfiguration (only clientConfig changed: the host URL and the serving
// cert's caBundle). Pods made directly and by the real controllers are stored with the sidecar
// after the API server's own validation; opted-out pods and other namespaces are untouched;
// a later webhook that adds a container makes the API server re-invoke meshlet; with the
// injector down, opted-in namespaces refuse pods with a clear message and others do not care.
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClusterCa } from './pki.ts';
import { clusterSkip, deployWebhookOnHost, eventually, namespace, startHostInjector, tempDir, useControlPlane, type HostInjector, type K8sObject } from './support.ts';

type Container = { name: string; image: string; restartPolicy?: string; ports?: { containerPort: number }[] };
type Pod = K8sObject & { spec: { initContainers?: Container[]; containers: Container[] } };
type List<T> = { items: T[] };

const OPTED_IN = 'shop';
const OTHER = 'plain';
const IMAGE = 'registry.invalid/meshlet-test/app:1'; // never pulled: no kubelet
const LATE = 'late-sidecar';

const podSpec = (restartPolicy = 'Always') => ({
  restartPolicy,
  containers: [{ name: 'app', image: IMAGE, ports: [{ containerPort: 8080, name: 'http' }] }],
});
const podObject = (name: string, ns: string, meta: { labels?: Record<string, string>; annotations?: Record<string, string> } = {}) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: ns, ...meta },
  spec: podSpec(),
});

const names = (cs: Container[] | undefined) => (cs ?? []).map((c) => c.name);
const isInjected = (p: Pod) =>
  names(p.spec.initContainers).slice(0, 2).join() === 'meshlet-init,meshlet-proxy' &&
  p.spec.initContainers![1]!.restartPolicy === 'Always' &&
  typeof (p.metadata['annotations'] as Record<string, string> | undefined)?.['meshlet.io/status'] === 'string';

const skip = clusterSkip();

describe.skipIf(skip)('meshlet injector behind a real API server', () => {
  const cluster = useControlPlane();
  let work: Awaited<ReturnType<typeof tempDir>>;
  let injector: HostInjector;
  let late: Server | undefined;

  const getPod = async (ns: string, name: string) => JSON.parse(await cluster().kubectlOk(['-n', ns, 'get', 'pod', name, '-o', 'json'])) as Pod;
  const create = (obj: object) => cluster().kubectl(['create', '-f', '-'], { input: JSON.stringify(obj) });

  beforeAll(async () => {
    work = await tempDir('meshlet-cluster-injector-');
    const cp = cluster();
    injector = await startHostInjector(work.dir);
    await deployWebhookOnHost(cp, 'MutatingWebhookConfiguration', injector.url, injector.caPem);
    await namespace(cp, OPTED_IN, { 'meshlet.io/inject': 'enabled' });
    await namespace(cp, OTHER);
  });
  afterAll(async () => {
    await injector?.stop();
    late?.closeAllConnections();
    await new Promise((r) => (late ? late.close(r) : r(undefined)));
    await work?.cleanup();
  });

  it('a Pod created directly in an opted-in namespace is stored with the sidecar', async () => {
    const r = await create(podObject('direct', OPTED_IN));
    expect(r.code, r.stderr).toBe(0);
    const pod = await getPod(OPTED_IN, 'direct');
    expect(isInjected(pod), JSON.stringify(pod.spec)).toBe(true);
    expect(names(pod.spec.containers)).toEqual(['app']);
    const volumes = (pod.spec as { volumes?: { name: string }[] }).volumes?.map((v) => v.name) ?? [];
    expect(volumes).toEqual(expect.arrayContaining(['meshlet-token', 'meshlet-trust', 'meshlet-policy']));
    expect(await injector.metric('meshlet_injector_admission_requests_total{result="injected"}')).toBeGreaterThanOrEqual(1);
  });

  it('Pods made by the Deployment, StatefulSet, Job and CronJob controllers get the sidecar', async () => {
    const cp = cluster();
    const labels = (app: string) => ({ matchLabels: { app } });
    const template = (app: string, restartPolicy = 'Always') => ({ metadata: { labels: { app } }, spec: podSpec(restartPolicy) });
    const workloads = [
      { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'deploy', namespace: OPTED_IN }, spec: { replicas: 1, selector: labels('deploy'), template: template('deploy') } },
      { apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'sts', namespace: OPTED_IN }, spec: { replicas: 1, serviceName: 'sts', selector: labels('sts'), template: template('sts') } },
      { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'job', namespace: OPTED_IN }, spec: { backoffLimit: 0, template: template('job', 'Never') } },
      // Every minute: the CronJob controller makes its first Job at the next minute boundary.
      { apiVersion: 'batch/v1', kind: 'CronJob', metadata: { name: 'cron', namespace: OPTED_IN }, spec: { schedule: '* * * * *', jobTemplate: { spec: { backoffLimit: 0, template: template('cron', 'Never') } } } },
    ];
    await cp.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: workloads }) });
    for (const app of ['deploy', 'sts', 'job', 'cron']) {
      const pod = await eventually(async () => (JSON.parse(await cp.kubectlOk(['-n', OPTED_IN, 'get', 'pods', '-l', `app=${app}`, '-o', 'json'])) as List<Pod>).items[0], `a Pod of ${app}`, 120_000);
      expect(isInjected(pod), `${app}: ${JSON.stringify(pod.spec.initContainers)}`).toBe(true);
      expect(names(pod.spec.containers)).toEqual(['app']);
    }
  });

  it('opted-out Pods and Pods of other namespaces are stored untouched', async () => {
    const cases: [string, string, object][] = [
      ['annotated-out', OPTED_IN, { annotations: { 'meshlet.io/inject': 'disabled' } }],
      ['labelled-out', OPTED_IN, { labels: { 'meshlet.io/inject': 'disabled' } }],
      ['elsewhere', OTHER, {}],
    ];
    for (const [name, ns, meta] of cases) {
      const r = await create(podObject(name, ns, meta));
      expect(r.code, r.stderr).toBe(0);
      const pod = await getPod(ns, name);
      expect(names(pod.spec.initContainers), name).toEqual([]);
      expect(names(pod.spec.containers), name).toEqual(['app']);
      expect((pod.metadata['annotations'] as Record<string, string> | undefined)?.['meshlet.io/status'], name).toBeUndefined();
    }
  });

  it('a later mutating webhook that adds a container re-invokes meshlet, which changes nothing more', async () => {
    const cp = cluster();
    // A second webhook of our own, after meshlet (configurations run in name order).
    const ca = await createClusterCa('late-webhook-ca');
    const serving = await ca.issue({ cn: 'late-webhook', usage: 'server', ips: ['127.0.0.1'] });
    let lateCalls = 0;
    late = createServer({ cert: serving.cert, key: serving.key }, (req, res) => {
      let body = '';
      req.setEncoding('utf8').on('data', (d: string) => (body += d));
      req.on('end', () => {
        lateCalls++;
        const review = JSON.parse(body) as { request: { uid: string; object: Pod } };
        const pod = review.request.object;
        const patch = names(pod.spec.containers).includes(LATE) ? [] : [{ op: 'add', path: '/spec/containers/-', value: { name: LATE, image: IMAGE, ports: [{ containerPort: 9000 }] } }];
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({
          apiVersion: 'admission.k8s.io/v1',
          kind: 'AdmissionReview',
          response: { uid: review.request.uid, allowed: true, ...(patch.length ? { patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') } : {}) },
        }));
      });
    });
    await new Promise<void>((r) => late!.listen(0, '127.0.0.1', r));
    const port = (late.address() as AddressInfo).port;
    await cp.kubectlOk(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'admissionregistration.k8s.io/v1',
        kind: 'MutatingWebhookConfiguration',
        metadata: { name: 'zz-late-sidecar' },
        webhooks: [{
          name: 'late-sidecar.test.meshlet.io',
          admissionReviewVersions: ['v1'],
          sideEffects: 'None',
          failurePolicy: 'Fail',
          reinvocationPolicy: 'Never',
          objectSelector: { matchLabels: { 'late-sidecar': 'true' } },
          rules: [{ apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], operations: ['CREATE'] }],
          clientConfig: { url: `https://127.0.0.1:${port}/mutate`, caBundle: Buffer.from(ca.cert).toString('base64') },
        }],
      }),
    });
    const skippedBefore = await injector.metric('meshlet_injector_admission_requests_total{result="skipped"}');
    // The webhook configuration cache of the API server catches up within a moment.
    await eventually(async () => {
      await cp.kubectl(['-n', OPTED_IN, 'delete', 'pod', 'reinvoked', '--ignore-not-found', '--wait=false']);
      await eventually(async () => (await cp.api('GET', `/api/v1/namespaces/${OPTED_IN}/pods/reinvoked`)).status === 404, 'the old test pod to go');
      const r = await create(podObject('reinvoked', OPTED_IN, { labels: { 'late-sidecar': 'true' } }));
      if (r.code !== 0) throw new Error(r.stderr);
      return lateCalls > 0;
    }, 'the late webhook to be called', 60_000);
    const pod = await getPod(OPTED_IN, 'reinvoked');
    expect(isInjected(pod)).toBe(true);
    expect(names(pod.spec.containers)).toEqual(['app', LATE]);
    expect(names(pod.spec.initContainers).filter((n) => n.startsWith('meshlet-'))).toEqual(['meshlet-init', 'meshlet-proxy']);
    // The second call to meshlet found its own status annotation: skipped (already-injected).
    expect(await injector.metric('meshlet_injector_admission_requests_total{result="skipped"}')).toBeGreaterThan(skippedBefore);
    await cp.kubectlOk(['delete', 'mutatingwebhookconfiguration', 'zz-late-sidecar']);
  });

  it('with the injector down, Pods in opted-in namespaces are refused with a clear message; other namespaces are unaffected', async () => {
    await injector.stop();
    const refused = await create(podObject('while-down', OPTED_IN));
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('failed calling webhook "inject.meshlet.io"');
    expect(refused.stderr).toMatch(/connect: connection refused/);
    expect((await cluster().api('GET', `/api/v1/namespaces/${OPTED_IN}/pods/while-down`)).status).toBe(404);

    const elsewhere = await create(podObject('while-down', OTHER));
    expect(elsewhere.code, elsewhere.stderr).toBe(0);
    // The emergency bypass: a pod labelled meshlet.io/inject=disabled is never sent to the webhook.
    const bypass = await create(podObject('bypass-while-down', OPTED_IN, { labels: { 'meshlet.io/inject': 'disabled' } }));
    expect(bypass.code, bypass.stderr).toBe(0);
  });
});
