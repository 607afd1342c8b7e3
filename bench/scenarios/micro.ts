import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { formatBenchTable, runPolicyDecisionBench, type DecisionBenchResult } from '../micro/policy-decision.ts';
import { createMutateHandler } from '../../injector/mutate.ts';
import { parseAdmissionReview } from '../../injector/webhook-server.ts';
import { DEFAULT_INJECTION_SETTINGS } from '../../injector/patch/settings.ts';
import { LatencyHistogram, type LatencySummary } from '../lib/latency-histogram.ts';

const run = promisify(execFile);
const MICRO_DIR = join(import.meta.dirname, '..', 'micro');

export interface AdmissionBenchResult {
  /** Full reviews per second, one after the other on one core. */
  reviewsPerSec: number;
  latency: LatencySummary;
  iterations: number;
  /** What one review includes. */
  method: string;
}

export interface OtherMicroBench {
  file: string;
  /** Its stdout (these benches print their own tables), or why it did not run. */
  output: string;
  ok: boolean;
}

export interface MicroResults {
  policyDecision: DecisionBenchResult[];
  policyDecisionTable: string;
  admissionReview: AdmissionBenchResult | { available: false; note: string };
  others: OtherMicroBench[];
}

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

/**
 * The injector's /mutate work in-process, as the webhook server does it minus the socket:
 * parse the AdmissionReview body, build the patch, serialize the answer.
 */
export async function runAdmissionBench(iterations: number): Promise<AdmissionBenchResult> {
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
  return { reviewsPerSec: iterations / seconds, latency, iterations, method: 'parseAdmissionReview + createMutateHandler (pod with 2 ports and 2 HTTP probes) + JSON.stringify of the answer, in-process, sequential' };
}

/** Any other benchmark file in bench/micro/ runs as its own process; its printed table is kept verbatim. */
async function runOtherMicroBenches(quick: boolean): Promise<OtherMicroBench[]> {
  const files = readdirSync(MICRO_DIR).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts') && f !== 'policy-decision.ts');
  const out: OtherMicroBench[] = [];
  for (const file of files) {
    if (quick) {
      out.push({ file, output: 'skipped in --quick', ok: false });
      continue;
    }
    try {
      const { stdout } = await run(process.execPath, [join(MICRO_DIR, file)], { timeout: 120_000, maxBuffer: 4 << 20 });
      out.push({ file, output: stdout.trim(), ok: true });
    } catch (err) {
      out.push({ file, output: `failed: ${(err as Error).message.slice(0, 500)}`, ok: false });
    }
  }
  return out;
}

export async function runMicroBenches(opts: { quick: boolean; log: (line: string) => void }): Promise<MicroResults> {
  opts.log('micro: policy decision (1,000-route policy)');
  const policyDecision = runPolicyDecisionBench({ iterations: opts.quick ? 5_000 : 200_000 });
  opts.log('micro: admission review (injector /mutate, in-process)');
  let admissionReview: MicroResults['admissionReview'];
  try {
    admissionReview = await runAdmissionBench(opts.quick ? 500 : 20_000);
  } catch (err) {
    admissionReview = { available: false, note: `not available: ${(err as Error).message}` };
  }
  const others = await runOtherMicroBenches(opts.quick);
  for (const o of others) opts.log(`micro: ${o.file}: ${o.ok ? 'done' : o.output}`);
  return { policyDecision, policyDecisionTable: formatBenchTable(policyDecision), admissionReview, others };
}
