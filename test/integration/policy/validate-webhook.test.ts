import { request as httpsRequest } from 'node:https';
import { connect } from 'node:tls';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWebhookServer } from '../../../src/control-plane/injector/webhook-server.ts';
import { validatePolicyConfigMap } from '../../../src/control-plane/injector/validate.ts';
import { readInjectorConfig } from '../../../src/control-plane/injector/config.ts';
import { ConfigError } from '../../../src/common/config/env.ts';
import { formatPolicyError, parsePolicy } from '../../../src/data-plane/policy/parse.ts';
import { servingCertificate } from './serving-certificate.ts';
import { Registry } from 'prom-client';
import { injectorRoutes } from '../../../src/cli/commands/injector.ts';
import { DEFAULT_INJECTION_SETTINGS } from '../../../src/control-plane/injector/patch/index.ts';

const VALID = `apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
spec:
  servers:
    - name: orders
      selector: { serviceAccount: orders }
      ports: [{ port: 8080, protocol: http }]
      routes:
        - name: read
          path: { prefix: /orders }
          callers: [{ namespace: web }]
`;
const INVALID = VALID.replace('{ namespace: web }', '{ spiffeId: "spiffe://cluster.local/ns/web/sa/" }').replace('name: read', 'name: read\n          port: 9090');
const WITH_WARNING = VALID.replace('{ namespace: web }', '{ unauthenticated: true }');

function review(uid: string, data: Record<string, string> | undefined, operation = 'CREATE') {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      kind: { group: '', version: 'v1', kind: 'ConfigMap' },
      resource: { group: '', version: 'v1', resource: 'configmaps' },
      operation,
      namespace: 'shop',
      name: 'orders-policy',
      object: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'orders-policy', namespace: 'shop', labels: { 'meshlet.io/policy': 'true' } }, ...(data ? { data } : {}) },
      dryRun: false,
    },
  };
}

describe('POST /validate over HTTPS', () => {
  let server: Server;
  let port: number;
  let ca: string;

  beforeAll(async () => {
    const { cert, key } = await servingCertificate();
    ca = cert;
    server = createWebhookServer({ cert, key, routes: { '/validate': validatePolicyConfigMap }, maxBodyBytes: 64 * 1024, requestTimeoutMs: 1_000 });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  function post(path: string, body: string | Buffer, headers: Record<string, string> = { 'content-type': 'application/json' }, method = 'POST') {
    return new Promise<{ status: number; json: any; text: string }>((resolve, reject) => {
      const req = httpsRequest({ host: '127.0.0.1', port, path, method, ca, headers }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => {
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode!, json, text });
        });
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  it('allows a valid policy ConfigMap, answering with the same uid', async () => {
    const r = await post('/validate', JSON.stringify(review('uid-valid-1', { 'policy.yaml': VALID })));
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'uid-valid-1', allowed: true } });
  });

  it('refuses an invalid policy with the same messages as `policy check`', async () => {
    const r = await post('/validate', JSON.stringify(review('uid-invalid-2', { 'policy.yaml': INVALID })));
    expect(r.status).toBe(200);
    expect(r.json.response).toMatchObject({ uid: 'uid-invalid-2', allowed: false, status: { code: 422, reason: 'Invalid' } });
    const parsed = parsePolicy(INVALID, 'ConfigMap shop/orders-policy data[policy.yaml]');
    if (parsed.ok) throw new Error('expected invalid');
    expect(parsed.errors.length).toBe(2);
    for (const e of parsed.errors) expect(r.json.response.status.message).toContain(formatPolicyError(e));
    expect(r.json.response.status.message).toContain(':12:'); // the spiffeId line of the embedded document
  });

  it('passes warnings back as admission warnings and still allows', async () => {
    const r = await post('/validate', JSON.stringify(review('uid-warn', { 'policy.yaml': WITH_WARNING })));
    expect(r.json.response.allowed).toBe(true);
    expect(r.json.response.warnings[0]).toContain('POLICY_UNAUTHENTICATED_CALLER');
  });

  it('refuses a labelled ConfigMap with no policy key', async () => {
    const r = await post('/validate', JSON.stringify(review('uid-nokey', { 'settings.json': '{}' })));
    expect(r.json.response).toMatchObject({ allowed: false });
    expect(r.json.response.status.message).toContain('no data key ending in .yaml');
  });

  it('allows a DELETE', async () => {
    const r = await post('/validate', JSON.stringify(review('uid-del', undefined, 'DELETE')));
    expect(r.json.response).toEqual({ uid: 'uid-del', allowed: true });
  });

  it('answers 400 with a message for malformed JSON and for a review without request/uid', async () => {
    const bad = await post('/validate', '{"apiVersion": ');
    expect(bad.status).toBe(400);
    expect(bad.json).toMatchObject({ error: 'WEBHOOK_BAD_JSON' });
    const noRequest = await post('/validate', JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }));
    expect(noRequest.status).toBe(400);
    expect(noRequest.json.message).toContain('"request"');
    const noUid = await post('/validate', JSON.stringify({ request: { operation: 'CREATE' } }));
    expect(noUid.status).toBe(400);
    expect(noUid.json.message).toContain('"uid"');
  });

  it('refuses an oversized body with 413', async () => {
    const huge = JSON.stringify(review('uid-big', { 'policy.yaml': 'x'.repeat(100 * 1024) }));
    const r = await post('/validate', huge);
    expect(r.status).toBe(413);
    expect(r.json.error).toBe('WEBHOOK_BODY_TOO_LARGE');
  });

  it('refuses a non-JSON content type, a GET, and an unknown path', async () => {
    expect((await post('/validate', '{}', { 'content-type': 'text/plain' })).status).toBe(415);
    expect((await post('/validate', '', {}, 'GET')).status).toBe(405);
    expect((await post('/mutate-nothing', '{}')).status).toBe(404);
    expect((await post('/healthz', '', {}, 'GET')).text).toBe('ok');
  });

  it('never hangs: a client that stops mid-body is cut off by the request timeout', async () => {
    const closed = await new Promise<string>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port, ca, servername: undefined }, () => {
        socket.write('POST /validate HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{"request":');
      });
      let received = '';
      socket.on('data', (d) => (received += d));
      socket.on('close', () => resolve(received));
      socket.on('error', reject);
    });
    // Either a 408 from Node's request timeout or a bare close: in both cases the server let go.
    expect(closed === '' || closed.startsWith('HTTP/1.1 408')).toBe(true);
  });
});

describe('injector configuration', () => {
  it('reports every bad variable at once', () => {
    try {
      readInjectorConfig({ MESHLET_INJECTOR_PORT: 'eighty', MESHLET_DEFAULT_POLICY: 'allow-all' });
      throw new Error('expected an error');
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const e = err as ConfigError;
      expect(e.code).toBe('MESHLET_CONFIG_INVALID');
      expect(e.problems).toHaveLength(4);
      expect(e.message).toContain('MESHLET_INJECTOR_TLS_CERT=(unset): required');
      expect(e.message).toContain('MESHLET_INJECTOR_PORT="eighty": must be an integer from 0 to 65535');
      expect(e.message).toContain('MESHLET_DEFAULT_POLICY="allow-all": must be one of deny, all-authenticated, audit');
    }
  });
});

describe('POST /validate as the injector serves it: every answer counted', () => {
  it('meshlet_injector_policy_validations_total counts allowed and denied policies', async () => {
    const registry = new Registry();
    const { cert, key } = await servingCertificate();
    const server = createWebhookServer({ cert, key, routes: injectorRoutes(DEFAULT_INJECTION_SETTINGS, registry), maxBodyBytes: 64 * 1024, requestTimeoutMs: 1_000 });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const send = (body: unknown) =>
      new Promise<any>((resolve, reject) => {
        const req = httpsRequest({ host: '127.0.0.1', port, path: '/validate', method: 'POST', ca: cert, headers: { 'content-type': 'application/json' } }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d) => (text += d));
          res.on('end', () => resolve(JSON.parse(text)));
        });
        req.on('error', reject);
        req.end(JSON.stringify(body));
      });
    try {
      const count = async (result: string) => (await registry.getSingleMetric('meshlet_injector_policy_validations_total')!.get()).values.find((v) => v.labels.result === result)?.value;
      expect([await count('allowed'), await count('denied')]).toEqual([0, 0]);
      expect((await send(review('uid-count-1', { 'policy.yaml': VALID }))).response.allowed).toBe(true);
      expect((await send(review('uid-count-2', { 'policy.yaml': INVALID }))).response.allowed).toBe(false);
      expect((await send(review('uid-count-3', { 'policy.yaml': '&a [*a' }))).response.allowed).toBe(false);
      expect([await count('allowed'), await count('denied')]).toEqual([1, 2]);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
