// Load benchmark of the mutating webhook: real HTTPS, real AdmissionReview JSON (a pod with two
// containers, ports and an httpGet probe), the injector's own server in a child process so the
// load generator does not steal its CPU.
// Run: node src/control-plane/injector/mutate.bench.ts [--seconds 10] [--connections 16]
// @bench-quick-args --seconds 1
// Prints one JSON line: admission reviews per second and latency percentiles (ms).
import { spawn } from 'node:child_process';
import { webcrypto } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { x509 } from '../../data-plane/identity/x509-library.ts';
import { createMutateHandler } from './mutate.ts';
import { DEFAULT_INJECTION_SETTINGS } from './patch/index.ts';
import { createWebhookServer } from './webhook-server.ts';

const REVIEW = JSON.stringify({
  apiVersion: 'admission.k8s.io/v1',
  kind: 'AdmissionReview',
  request: {
    uid: '7f0c2a5e-1b1e-4c55-9a0e-3f3c9a1d2b10',
    kind: { group: '', version: 'v1', kind: 'Pod' },
    resource: { group: '', version: 'v1', resource: 'pods' },
    namespace: 'shop',
    operation: 'CREATE',
    userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller' },
    object: {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { generateName: 'orders-7d9f8-', labels: { app: 'orders', 'pod-template-hash': '7d9f8' } },
      spec: {
        serviceAccountName: 'orders',
        containers: [
          {
            name: 'orders',
            image: 'registry.example/orders:1.4.2',
            ports: [{ name: 'http', containerPort: 8080 }, { name: 'grpc', containerPort: 9090 }],
            readinessProbe: { httpGet: { path: '/ready', port: 'http' }, periodSeconds: 5 },
            livenessProbe: { httpGet: { path: '/live', port: 8080 } },
            resources: { requests: { cpu: '100m', memory: '128Mi' } },
          },
          { name: 'log-shipper', image: 'registry.example/shipper:2.0' },
        ],
      },
    },
  },
});

async function selfSignedServingCert(): Promise<{ cert: string; key: string }> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '03',
    name: 'CN=meshlet-injector.meshlet-system.svc',
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 3_600_000),
    keys,
    signingAlgorithm: alg,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'meshlet-injector.meshlet-system.svc' }])],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
  return { cert: cert.toString('pem'), key: `-----BEGIN PRIVATE KEY-----\n${pkcs8.match(/.{1,64}/g)!.join('\n')}\n-----END PRIVATE KEY-----\n` };
}

async function serve(): Promise<void> {
  const { cert, key } = await selfSignedServingCert();
  const server = createWebhookServer({ cert, key, routes: { '/mutate': createMutateHandler({ settings: DEFAULT_INJECTION_SETTINGS }) } });
  server.listen(0, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port, cert })}\n`));
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}

async function load(seconds: number, connections: number): Promise<void> {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--serve'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = (await once(child.stdout!, 'data')) as [Buffer];
  const { port, cert } = JSON.parse(line.toString()) as { port: number; cert: string };
  const pool = new Pool(`https://127.0.0.1:${port}`, { connections, connect: { ca: cert, servername: 'meshlet-injector.meshlet-system.svc' } });
  const latencies: number[] = [];
  let errors = 0;
  const warmupEnd = performance.now() + 1_000;
  const end = warmupEnd + seconds * 1000;
  const worker = async () => {
    while (performance.now() < end) {
      const t0 = performance.now();
      const res = await pool.request({ path: '/mutate', method: 'POST', headers: { 'content-type': 'application/json' }, body: REVIEW });
      const body = (await res.body.json()) as { response?: { patchType?: string } };
      if (res.statusCode !== 200 || body.response?.patchType !== 'JSONPatch') errors++;
      if (t0 >= warmupEnd) latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: connections }, worker));
  await pool.close();
  child.kill('SIGTERM');
  latencies.sort((a, b) => a - b);
  const q = (p: number) => Number(latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!.toFixed(3));
  process.stdout.write(
    JSON.stringify({ bench: 'injector-admission', connections, seconds, reviews: latencies.length, errors, reviewsPerSecond: Math.round(latencies.length / seconds), p50Ms: q(0.5), p99Ms: q(0.99), p999Ms: q(0.999) }) + '\n',
  );
}

const { values } = parseArgs({ options: { serve: { type: 'boolean' }, seconds: { type: 'string' }, connections: { type: 'string' } } });
if (values.serve) await serve();
else await load(Number(values.seconds ?? 10), Number(values.connections ?? 16));
