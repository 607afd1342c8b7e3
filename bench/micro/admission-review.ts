// Micro-benchmark of the injector's /mutate work in-process, as the webhook server does it minus
// the socket: parse the AdmissionReview body, build the patch, serialize the answer.
// (src/control-plane/injector/mutate.bench.ts measures the same handler over HTTPS under load.)
// Run: node bench/micro/admission-review.ts [--iterations 20000]
// @bench-quick-args --iterations 500
// Prints one JSON line: reviews per second (sequential, one core) and latency percentiles (µs).
import { parseArgs } from 'node:util';
import { createMutateHandler } from '../../src/control-plane/injector/mutate.ts';
import { parseAdmissionReview } from '../../src/control-plane/injector/webhook-server.ts';
import { DEFAULT_INJECTION_SETTINGS } from '../../src/control-plane/injector/patch/settings.ts';
import { LatencyHistogram } from '../lib/latency-histogram.ts';

/** A typical application pod as the API server sends it for CREATE: two ports, HTTP probes, opted in. */
function podReviewBody(i: number): Buffer {
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { generateName: 'orders-7d9f8b-', namespace: 'shop', labels: { app: 'orders', 'pod-template-hash': '7d9f8b' }, annotations: { 'meshlet.io/inject': 'enabled' } },
    spec: {
      serviceAccountName: 'orders',
      containers: [
        {
          name: 'orders',
          image: 'registry.example/orders:1.4.2',
          ports: [
            { name: 'http', containerPort: 8080, protocol: 'TCP' },
            { name: 'grpc', containerPort: 9090, protocol: 'TCP' },
          ],
          readinessProbe: { httpGet: { path: '/ready', port: 8080 }, periodSeconds: 5 },
          livenessProbe: { httpGet: { path: '/live', port: 'http' }, periodSeconds: 10 },
          resources: { requests: { cpu: '100m', memory: '128Mi' } },
          env: [{ name: 'LOG_LEVEL', value: 'info' }],
        },
      ],
    },
  };
  const review = {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: { uid: `bench-${i}`, kind: { group: '', version: 'v1', kind: 'Pod' }, resource: { group: '', version: 'v1', resource: 'pods' }, operation: 'CREATE', namespace: 'shop', object: pod },
  };
  return Buffer.from(JSON.stringify(review));
}

const { values } = parseArgs({ options: { iterations: { type: 'string', default: '20000' } } });
const iterations = Number(values.iterations);
const handler = createMutateHandler({ settings: DEFAULT_INJECTION_SETTINGS });
const bodies = Array.from({ length: 16 }, (_, i) => podReviewBody(i));
const once = async (i: number) => {
  const request = parseAdmissionReview(bodies[i & 15]!);
  const response = await handler(request);
  if (!response.patch) throw new Error(`the bench pod was not injected: ${JSON.stringify(response)}`);
  return JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { ...response, uid: request.uid } }).length;
};
for (let i = 0; i < Math.min(iterations, 2000); i++) await once(i); // warm-up: let the JIT settle
const h = new LatencyHistogram();
const start = process.hrtime.bigint();
for (let i = 0; i < iterations; i++) {
  const t0 = process.hrtime.bigint();
  await once(i);
  h.recordNanos(process.hrtime.bigint() - t0);
}
const seconds = Number(process.hrtime.bigint() - start) / 1e9;
const latency = h.summary();
h.destroy();
console.log(
  JSON.stringify({
    reviewsPerSec: Math.round(iterations / seconds),
    latency,
    iterations,
    method: 'parseAdmissionReview + createMutateHandler (pod with 2 ports and 2 HTTP probes) + JSON.stringify of the answer, in-process, sequential',
  }),
);
