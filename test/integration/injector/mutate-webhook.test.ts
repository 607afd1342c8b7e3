import type { Server } from 'node:https';
import fastJsonPatch from 'fast-json-patch';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWebhookServer } from '../../../src/control-plane/injector/webhook-server.ts';
import { createMutateHandler } from '../../../src/control-plane/injector/mutate.ts';
import { promInjectorMetrics } from '../../../src/control-plane/injector/metrics.ts';
import { DEFAULT_INJECTION_SETTINGS, injectPod, InjectorInternalError, type Pod } from '../../../src/control-plane/injector/patch/index.ts';
import { loadPod } from '../../unit/injector/golden-support.ts';
import { listen, podReview, post, servingCertificate } from './webhook-fixture.ts';

/**
 * POST /mutate over real HTTPS, through the injector's webhook server, with real
 * AdmissionReview JSON — the good paths and every bad input the issue lists.
 */
let ca: string;
let port: number;
let allowPort: number;
const registry = new Registry();
const servers: Server[] = [];
const internalErrors: unknown[] = [];

const broken: typeof injectPod = () => {
  throw new InjectorInternalError('patch builder exploded');
};

beforeAll(async () => {
  const { cert, key } = await servingCertificate();
  ca = cert;
  const metrics = promInjectorMetrics(registry);
  const mutate = createMutateHandler({ settings: DEFAULT_INJECTION_SETTINGS, metrics });
  const failClosed = createMutateHandler({ settings: DEFAULT_INJECTION_SETTINGS, metrics, inject: broken, onError: (e) => internalErrors.push(e) });
  const failOpen = createMutateHandler({ settings: { ...DEFAULT_INJECTION_SETTINGS, failureMode: 'allow' }, metrics, inject: broken });
  const main = createWebhookServer({ cert, key, routes: { '/mutate': mutate, '/mutate-broken': failClosed }, maxBodyBytes: 256 * 1024 });
  const open = createWebhookServer({ cert, key, routes: { '/mutate': failOpen } });
  servers.push(main, open);
  port = await listen(main);
  allowPort = await listen(open);
});

afterAll(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

const decodePatch = (b64: string) => JSON.parse(Buffer.from(b64, 'base64').toString('utf8')) as fastJsonPatch.Operation[];

async function counter(result: string): Promise<number> {
  const metric = await registry.getSingleMetric('meshlet_injector_admission_requests_total')!.get();
  return metric.values.find((v) => v.labels.result === result)?.value ?? 0;
}

describe('POST /mutate', () => {
  it('injects a pod CREATE: same uid, JSONPatch, base64 patch that applies and equals the builder output', async () => {
    const pod = loadPod('plain');
    const review = podReview(pod);
    const before = await counter('injected');
    const { status, json } = await post(port, ca, JSON.stringify(review));
    expect(status).toBe(200);
    expect(json.apiVersion).toBe('admission.k8s.io/v1');
    expect(json.kind).toBe('AdmissionReview');
    expect(json.response.uid).toBe((review.request as { uid: string }).uid);
    expect(json.response.allowed).toBe(true);
    expect(json.response.patchType).toBe('JSONPatch');
    const patch = decodePatch(json.response.patch);
    const expected = injectPod(pod, 'shop', DEFAULT_INJECTION_SETTINGS);
    expect(expected.outcome === 'injected' && patch).toEqual(expected.outcome === 'injected' && expected.patch);
    const patched = fastJsonPatch.applyPatch(structuredClone(pod), patch, true, false).newDocument as Pod;
    expect(patched.spec.initContainers?.map((c) => c.name)).toEqual(['meshlet-init', 'meshlet-proxy']);
    expect(json.response.auditAnnotations).toEqual({ injection: 'injected' });
    expect(await counter('injected')).toBe(before + 1);
  });

  it('uses request.namespace when the pod has none (pods from a controller)', async () => {
    const pod = loadPod('plain');
    delete pod.metadata!.namespace;
    const { json } = await post(port, ca, JSON.stringify(podReview(pod, { namespace: 'kube-system' })));
    expect(json.response).toMatchObject({ allowed: true, auditAnnotations: { injection: 'skipped: excluded-namespace' } });
    expect(json.response.patch).toBeUndefined();
  });

  it.each([
    ['already-injected', 'skipped: already-injected', false],
    ['opted-out', 'skipped: opted-out', true],
    ['host-network', 'skipped: host-network', true],
  ])('%s: allowed, no patch, reason in auditAnnotations', async (fixture, audit, warns) => {
    const { status, json } = await post(port, ca, JSON.stringify(podReview(loadPod(fixture))));
    expect(status).toBe(200);
    expect(json.response.allowed).toBe(true);
    expect(json.response.patch).toBeUndefined();
    expect(json.response.patchType).toBeUndefined();
    expect(json.response.auditAnnotations).toEqual({ injection: audit });
    expect(Array.isArray(json.response.warnings)).toBe(warns);
  });

  it('passes probe warnings to kubectl', async () => {
    const { json } = await post(port, ca, JSON.stringify(podReview(loadPod('every-probe-kind'))));
    expect(json.response.patchType).toBe('JSONPatch');
    // grpc and tcpSocket probes are moved to the admin port now; the probe with host cannot be.
    expect(json.response.warnings).toHaveLength(1);
    expect(json.response.warnings[0]).toContain('readinessProbe.httpGet has host status.example.com: not rewritten');
  });

  it.each([
    ['a pod UPDATE', { operation: 'UPDATE' }],
    ['a pod DELETE', { operation: 'DELETE', object: null }],
    ['a ConfigMap CREATE', { kind: { group: '', version: 'v1', kind: 'ConfigMap' }, resource: { group: '', version: 'v1', resource: 'configmaps' }, object: { apiVersion: 'v1', kind: 'ConfigMap', data: {} } }],
    ['a Deployment CREATE', { kind: { group: 'apps', version: 'v1', kind: 'Deployment' }, resource: { group: 'apps', version: 'v1', resource: 'deployments' } }],
    ['a pods/ephemeralcontainers subresource', { subResource: 'ephemeralcontainers' }],
  ])('%s is allowed without a patch', async (_, overrides) => {
    const before = await counter('ignored');
    const { status, json } = await post(port, ca, JSON.stringify(podReview(loadPod('plain'), overrides)));
    expect(status).toBe(200);
    expect(json.response).toEqual({ allowed: true, uid: expect.any(String) });
    expect(await counter('ignored')).toBe(before + 1);
  });

  it('denies a pod with a bad annotation, naming it', async () => {
    const pod = loadPod('plain');
    pod.metadata!.annotations = { 'meshlet.io/skip-outbound-cidrs': '10.0.0.0/40' };
    const before = await counter('refused');
    const { status, json } = await post(port, ca, JSON.stringify(podReview(pod)));
    expect(status).toBe(200);
    expect(json.response.allowed).toBe(false);
    expect(json.response.patch).toBeUndefined();
    expect(json.response.status.code).toBe(400);
    expect(json.response.status.message).toBe('meshlet: INJECTOR_ANNOTATION_INVALID: annotation meshlet.io/skip-outbound-cidrs="10.0.0.0/40": "10.0.0.0/40" is not an IPv4 CIDR (a.b.c.d/0-32) or an IPv6 CIDR (e.g. fd00:ec2::254/128)');
    expect(await counter('refused')).toBe(before + 1);
  });

  it('denies an object claiming to be a Pod without spec.containers', async () => {
    const { json } = await post(port, ca, JSON.stringify(podReview({ apiVersion: 'v1', kind: 'Pod', metadata: {} })));
    expect(json.response.allowed).toBe(false);
    expect(json.response.status.message).toContain('INJECTOR_POD_MALFORMED');
  });

  it('answers malformed JSON with 400 and a message', async () => {
    const { status, json } = await post(port, ca, '{"apiVersion": "admission.k8s.io/v1", "request": {');
    expect(status).toBe(400);
    expect(json.error).toBe('WEBHOOK_BAD_JSON');
  });

  it.each([
    ['no request', { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }],
    ['a request without uid', { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { operation: 'CREATE' } }],
    ['a JSON array', []],
    ['JSON null', null],
  ])('answers %s with 400', async (_, body) => {
    const { status, json } = await post(port, ca, JSON.stringify(body));
    expect(status).toBe(400);
    expect(json.error).toBe('WEBHOOK_NO_REQUEST');
  });

  it('refuses an oversized body with 413 and keeps serving', async () => {
    const pod = loadPod('plain');
    pod.metadata!.annotations = { padding: 'x'.repeat(300 * 1024) };
    const { status, json } = await post(port, ca, JSON.stringify(podReview(pod)));
    expect(status).toBe(413);
    expect(json.error).toBe('WEBHOOK_BODY_TOO_LARGE');
    expect((await post(port, ca, JSON.stringify(podReview(loadPod('plain'))))).json.response.allowed).toBe(true);
  });

  it('fails closed on an internal error by default: denied with the code, counted, reported', async () => {
    const before = await counter('error_denied');
    const { status, json } = await post(port, ca, JSON.stringify(podReview(loadPod('plain'))), '/mutate-broken');
    expect(status).toBe(200);
    expect(json.response.allowed).toBe(false);
    expect(json.response.status).toEqual({ code: 500, reason: 'InternalError', message: 'meshlet injector internal error (INJECTOR_INTERNAL): patch builder exploded' });
    expect(await counter('error_denied')).toBe(before + 1);
    expect(internalErrors.at(-1)).toBeInstanceOf(InjectorInternalError);
  });

  it('fails open when configured: allowed without mesh, with a warning, counted', async () => {
    const before = await counter('error_allowed');
    const { status, json } = await post(allowPort, ca, JSON.stringify(podReview(loadPod('plain'))));
    expect(status).toBe(200);
    expect(json.response.allowed).toBe(true);
    expect(json.response.patch).toBeUndefined();
    expect(json.response.warnings).toEqual(['meshlet injector internal error (INJECTOR_INTERNAL): patch builder exploded; the pod runs WITHOUT the mesh']);
    expect(await counter('error_allowed')).toBe(before + 1);
  });

  it('answers a burst of concurrent reviews, each with its own uid', async () => {
    const reviews = Array.from({ length: 40 }, () => podReview(loadPod('several-containers')));
    const answers = await Promise.all(reviews.map((r) => post(port, ca, JSON.stringify(r))));
    answers.forEach((a, i) => {
      expect(a.status).toBe(200);
      expect(a.json.response.uid).toBe((reviews[i]!.request as { uid: string }).uid);
      expect(a.json.response.patchType).toBe('JSONPatch');
    });
  });

  it('exposes the duration histogram and every result series', async () => {
    const text = await registry.metrics();
    expect(text).toMatch(/meshlet_injector_admission_duration_seconds_count \d+/);
    for (const r of ['injected', 'skipped', 'ignored', 'refused', 'error_allowed', 'error_denied']) {
      expect(text).toContain(`meshlet_injector_admission_requests_total{result="${r}"}`);
    }
  });
});
