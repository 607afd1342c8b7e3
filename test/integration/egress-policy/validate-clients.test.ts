import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWebhookServer } from '../../../src/control-plane/injector/webhook-server.ts';
import { validatePolicyConfigMap } from '../../../src/control-plane/injector/validate.ts';
import { servingCertificate } from '../policy/serving-certificate.ts';

/**
 * Issue 16 item 1 — `POST /validate` over real HTTPS judges the client side with the same parser
 * as `policy check`: an invalid client is refused with its coded, located error, a client warning
 * comes back as an admission warning, a document of clients only is allowed.
 */
const CLIENTS = `apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: web, namespace: web }
spec:
  clients:
    - name: frontend
      selector: { serviceAccount: frontend }
      destinations:
        - { name: orders, namespace: shop, ports: [8080] }
        - { name: stripe, host: api.stripe.com }
`;

function review(uid: string, policy: string) {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      kind: { group: '', version: 'v1', kind: 'ConfigMap' },
      resource: { group: '', version: 'v1', resource: 'configmaps' },
      operation: 'CREATE',
      namespace: 'web',
      name: 'meshlet-policy',
      object: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'meshlet-policy', namespace: 'web', labels: { 'meshlet.io/policy': 'true' } }, data: { 'policy.yaml': policy } },
      dryRun: false,
    },
  };
}

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

function validate(uid: string, policy: string): Promise<{ status: number; response: { uid: string; allowed: boolean; status?: { code: number; reason: string; message: string }; warnings?: string[] } }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path: '/validate', method: 'POST', ca, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, response: JSON.parse(text).response }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(review(uid, policy)));
  });
}

describe('/validate and the client side', () => {
  it('a policy of clients only is allowed', async () => {
    const r = await validate('uid-clients', CLIENTS);
    expect(r.status).toBe(200);
    expect(r.response).toEqual({ uid: 'uid-clients', allowed: true });
  });

  it('client errors are refused (422), each with its code and line:col in the embedded document', async () => {
    const bad = CLIENTS.replace('host: api.stripe.com', 'host: api.stripe.com, cidr: 10.0.0.0/8').replace('ports: [8080] }', 'ports: [8080] }\n        - { name: orders, cidr: 10.0.0.0/99 }');
    const r = await validate('uid-bad-client', bad);
    expect(r.response).toMatchObject({ uid: 'uid-bad-client', allowed: false, status: { code: 422, reason: 'Invalid' } });
    const message = r.response.status!.message;
    expect(message).toMatch(/^invalid meshlet policy \(3 errors\):\n/);
    expect(message).toContain('ConfigMap web/meshlet-policy data[policy.yaml]:10:19: error POLICY_DUPLICATE_DESTINATION at spec.clients[0].destinations[1].name');
    expect(message).toContain('ConfigMap web/meshlet-policy data[policy.yaml]:10:33: error POLICY_BAD_CIDR at spec.clients[0].destinations[1].cidr');
    expect(message).toContain('ConfigMap web/meshlet-policy data[policy.yaml]:11:11: error POLICY_BAD_DESTINATION at spec.clients[0].destinations[2]');
  });

  it('a client warning is returned as an admission warning, and the policy allowed', async () => {
    const shadowed = `${CLIENTS}    - name: frontend-again
      selector: { serviceAccount: frontend }
      destinations: []
`;
    const r = await validate('uid-warn-client', shadowed);
    expect(r.response.allowed).toBe(true);
    expect(r.response.warnings).toEqual([expect.stringContaining('warning POLICY_SHADOWED_CLIENT at spec.clients[1].selector: client "frontend-again" has the same selector as spec.clients[0]')]);
  });

  it('neither servers nor clients: refused with the precise reason', async () => {
    const r = await validate('uid-empty-spec', 'apiVersion: policy.meshlet.io/v1alpha1\nkind: AuthorizationPolicy\nspec: {}\n');
    expect(r.response.allowed).toBe(false);
    expect(r.response.status!.message).toContain('error POLICY_SCHEMA at spec: spec declares neither "servers" nor "clients"');
  });
});
