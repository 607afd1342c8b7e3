// docs/policy.md against what two assembled sidecars do (issue 17, "check docs against
// behaviour wherever a doc states a default, a body or a name"): the "Denials" rows for a
// refused path and for gRPC, and what a policy's `port` is — the app's port, not the sidecar's
// listener. (The HTTP 403 body is test/integration/sidecar/denial-body-docs.test.ts.)
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import type { ServerHttp2Stream } from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/common/log/logger.ts';
import type { Sidecar } from '../../../src/data-plane/sidecar/sidecar.ts';
import { normalizePath } from '../../../src/data-plane/policy/normalize-path.ts';
import { PROXY_ERROR_CATALOG, ProxyError } from '../../../src/data-plane/proxy/http/errors.ts';
import { respondStreamWithError } from '../../../src/data-plane/proxy/pipeline/caller-answer.ts';
import { kubeletWrite } from '../../support/kubelet-volume.ts';
import { meshOfTwo, ordersPolicy, startSidecars, type MeshOfTwo } from '../sidecar/mesh-of-two.ts';

const policyDoc = readFileSync(new URL('../../../docs/policy.md', import.meta.url), 'utf8');
const row = (name: string) => {
  const line = policyDoc.split('\n').find((l) => l.startsWith(`| ${name} |`));
  if (!line) throw new Error(`docs/policy.md "Denials": no "| ${name} |" row`);
  return line;
};

let mesh: MeshOfTwo;
let orders: Sidecar;
let frontend: Sidecar;

function viaFrontend(method: string, path: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: mesh.ports.frontendOutbound, method, path: `http://orders.shop:80${path}`, headers: { host: 'orders.shop:80' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  mesh = await meshOfTwo();
  ({ orders, frontend } = await startSidecars(mesh, createLogger({ name: 'sidecar', level: 'fatal' })));
});

afterAll(async () => {
  await Promise.all([orders?.stop(), frontend?.stop()]);
  await mesh?.close();
});

describe('docs/policy.md "Denials"', () => {
  it('refused path: 400, the headers and the body shown, <reason> from the path normalizer; gRPC status 3', async () => {
    const line = row('refused path');
    const res = await viaFrontend('GET', '/orders%2F1');
    expect(res.status).toBe(400);
    expect(line).toContain('HTTP `400`');
    expect(line).toContain(`\`content-type: ${res.headers['content-type']}\``);
    expect(line).toContain(`\`x-meshlet-error: ${res.headers['x-meshlet-error']}\``);
    const refused = normalizePath('/orders%2F1');
    expect(refused.ok).toBe(false);
    const reason = refused.ok ? '' : refused.reason;
    const body = /body `([^`]+)`/.exec(line)![1]!;
    expect(res.body).toBe(body.replace('<reason>', reason));
    expect(line).toContain(`e.g. \`${reason}\``);
    expect(line).toContain(`\`grpc-status: ${PROXY_ERROR_CATALOG.MESHLET_BAD_PATH.grpcStatus}\``);
  });

  it('gRPC: the trailers-only answer\'s fields, with and without a route', () => {
    const line = row('gRPC');
    const answer = (route: string | null, reason: string) => {
      let headers: Record<string, string> = {};
      const stream = { destroyed: false, closed: false, headersSent: false, respond: (h: Record<string, string>) => (headers = h) } as unknown as ServerHttp2Stream;
      respondStreamWithError(stream, new ProxyError('MESHLET_DENIED', 'request denied by policy', { details: { route, reason } }), true);
      return headers;
    };
    const routed = answer('admin', 'caller is not authorized by route "admin"');
    expect(line).toContain(`HTTP/2 \`:status ${routed[':status']}\``);
    expect(line).toContain(`\`content-type: ${routed['content-type']}\``);
    expect(line).toContain(`\`x-meshlet-error: ${routed['x-meshlet-error']}\``);
    expect(line).toContain(`\`grpc-status: ${routed['grpc-status']}\``);
    expect(decodeURIComponent(routed['grpc-message']!)).toBe(/`grpc-message` percent-encoded: `([^`]+)`/.exec(line)![1]);
    expect(line).toContain('without ` (route …)` when a default denied');
    expect(decodeURIComponent(answer(null, 'no route matches')['grpc-message']!)).toBe('request denied by policy: no route matches');
  });
});

describe('docs/policy.md: a policy\'s port is the app\'s port, not the sidecar\'s listener', () => {
  it('says so', () => {
    expect(policyDoc).toContain("**Ports are the app's ports.**");
    expect(policyDoc).toContain('(decision code `port-not-declared`)');
  });

  it('a policy naming the app port allows; the same policy naming the listener port leaves the app port undeclared', async () => {
    const listener = mesh.ports.ordersInbound;
    expect(listener).not.toBe(mesh.appPort);
    expect((await viaFrontend('GET', '/orders')).status).toBe(200);

    // The same policy with the inbound listener's port where the app's was.
    await kubeletWrite(mesh.ordersPolicyDir, { 'policy.yaml': ordersPolicy(listener, mesh.tcpAppPort) });
    let res = await viaFrontend('GET', '/orders');
    for (let i = 0; i < 100 && res.status !== 403; i++) {
      await new Promise((r) => setTimeout(r, 100));
      res = await viaFrontend('GET', '/orders');
    }
    expect(res.status).toBe(403);
    const error = (JSON.parse(res.body) as { error: { route: string | null; reason: string } }).error;
    expect(error.route).toBeNull();
    // The request arrived on that listener, yet its port is "not declared": the policy is asked about the app's port.
    expect(error.reason).toContain('port is not declared');

    await kubeletWrite(mesh.ordersPolicyDir, { 'policy.yaml': ordersPolicy(mesh.appPort, mesh.tcpAppPort) });
    for (let i = 0; i < 100 && res.status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 100));
      res = await viaFrontend('GET', '/orders');
    }
    expect(res.status).toBe(200);
  });
});
