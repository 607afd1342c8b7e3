import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/common/log/logger.ts';
import type { Sidecar } from '../../../src/data-plane/sidecar/sidecar.ts';
import { meshOfTwo, startSidecars, type MeshOfTwo } from './mesh-of-two.ts';

/**
 * The denial bodies docs/policy.md and docs/deploy.md show are the bytes a real sidecar sends:
 * two assembled sidecars (frontend -> orders, orders' policy from mesh-of-two.ts) produce the
 * very decisions the docs use as examples, and each response body must equal the documented one.
 */
const doc = (name: string) => readFileSync(new URL(`../../../docs/${name}`, import.meta.url), 'utf8');

/** docs/policy.md, "Denials": the HTTP row's body `…`. */
function policyDocBody(): string {
  const row = doc('policy.md').split('\n').find((l) => l.startsWith('| HTTP |'));
  const m = row && /body `([^`]+)`/.exec(row);
  if (!m) throw new Error('docs/policy.md: no "| HTTP | … body `…`" row in Denials');
  return m[1]!;
}

/** docs/deploy.md: the denied POST's output line, `<body> 403` (curl -w ' %{http_code}'). */
function deployDocBody(): string {
  const line = doc('deploy.md').split('\n').find((l) => l.startsWith('{"error"') && l.endsWith(' 403'));
  if (!line) throw new Error('docs/deploy.md: no `{"error"… 403` output line');
  return line.slice(0, -' 403'.length);
}

let mesh: MeshOfTwo;
let orders: Sidecar;
let frontend: Sidecar;

function viaFrontend(method: string, path: string): Promise<{ status: number; code: unknown; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: mesh.ports.frontendOutbound, method, path: `http://orders.shop:80${path}`, headers: { host: 'orders.shop:80' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, code: res.headers['x-meshlet-error'], body }));
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

describe('the denial body the docs show is the one a denied caller gets', () => {
  it('docs/policy.md: a route whose callers exclude the caller (route "admin")', async () => {
    const res = await viaFrontend('GET', '/admin/users');
    expect([res.status, res.code]).toEqual([403, 'MESHLET_DENIED']);
    expect(res.body).toBe(policyDocBody());
  });

  it('docs/deploy.md: no route matches, the server default denies (route null)', async () => {
    const res = await viaFrontend('POST', '/orders');
    expect([res.status, res.code]).toEqual([403, 'MESHLET_DENIED']);
    expect(res.body).toBe(deployDocBody());
  });
});
