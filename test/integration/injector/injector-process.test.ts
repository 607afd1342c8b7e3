import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startInjector, type RunningInjector } from '../../../src/cli/commands/injector.ts';
import { readInjectorConfig } from '../../../src/control-plane/injector/config.ts';
import { loadPod } from '../../unit/injector/golden-support.ts';
import { podReview, post, servingCertificate } from './webhook-fixture.ts';

/** The assembled `meshlet injector`: both webhook routes on one HTTPS server, metrics on its admin port. */
let running: RunningInjector;
let ca: string;
let dir: string;

beforeAll(async () => {
  const { cert, key } = await servingCertificate();
  ca = cert;
  dir = await mkdtemp(join(tmpdir(), 'meshlet-injector-'));
  await writeFile(join(dir, 'tls.crt'), cert);
  await writeFile(join(dir, 'tls.key'), key);
  running = await startInjector(
    readInjectorConfig({ MESHLET_INJECTOR_TLS_CERT: join(dir, 'tls.crt'), MESHLET_INJECTOR_TLS_KEY: join(dir, 'tls.key'), MESHLET_INJECTOR_HOST: '127.0.0.1', MESHLET_INJECTOR_PORT: '0', MESHLET_INJECTOR_ADMIN_PORT: '0' }),
  );
});

afterAll(async () => {
  await running?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('meshlet injector process', () => {
  it('injects a pod on /mutate and counts it on the admin /metrics', async () => {
    const review = podReview(loadPod('plain'));
    const answer = await post(running.port, ca, JSON.stringify(review));
    expect(answer.status).toBe(200);
    expect(answer.json.response.uid).toBe((review.request as { uid: string }).uid);
    expect(answer.json.response.allowed).toBe(true);
    expect(answer.json.response.patchType).toBe('JSONPatch');
    const patch = JSON.parse(Buffer.from(answer.json.response.patch, 'base64').toString('utf8')) as { path: string }[];
    expect(patch.some((op) => op.path.startsWith('/spec/initContainers'))).toBe(true);

    const metrics = await (await fetch(`http://127.0.0.1:${running.adminPort}/metrics`)).text();
    expect(metrics).toMatch(/meshlet_injector_admission_requests_total\{result="injected"\} 1/);
  });

  it('still validates policy ConfigMaps on /validate', async () => {
    const review = {
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: {
        uid: 'u-1',
        kind: { group: '', version: 'v1', kind: 'ConfigMap' },
        resource: { group: '', version: 'v1', resource: 'configmaps' },
        operation: 'CREATE',
        namespace: 'shop',
        object: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'meshlet-policy', namespace: 'shop' }, data: { 'policy.yaml': 'apiVersion: nope\n' } },
      },
    };
    const answer = await post(running.port, ca, JSON.stringify(review), '/validate');
    expect(answer.status).toBe(200);
    expect(answer.json.response.uid).toBe('u-1');
    expect(answer.json.response.allowed).toBe(false);
    expect(answer.json.response.status.message).toContain('apiVersion');
  });

  it('refuses a bad injection setting together with the other bad variables', () => {
    let message = '';
    try {
      readInjectorConfig({ MESHLET_INJECTOR_NATIVE_SIDECAR: 'maybe' });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain('MESHLET_INJECTOR_NATIVE_SIDECAR="maybe": must be true or false');
    expect(message).toContain('MESHLET_INJECTOR_TLS_CERT=(unset): required');
  });
});
