import { createServer, type Server } from 'node:http';
import { randomInt } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { AdminServer } from '../../../src/data-plane/admin/admin-server.ts';
import { readSidecarConfig } from '../../../src/data-plane/sidecar/sidecar-env.ts';
import { parseExposition } from '../../../src/cli/scrape/parse-exposition.ts';
import { meshOfTwo } from '../sidecar/mesh-of-two.ts';
import { startSidecarProcess } from './sidecar-process.ts';

/**
 * Issue 11 item 8 — prototype lookup on the probe table. `/app-health/__proto__` found
 * Object.prototype in the plain-object probe table, and the sidecar sent a request to the app
 * built from whatever that object had: no port, so port 80, path `/` — an unauthenticated
 * request that no policy saw. Every name an object inherits must be an unknown probe (404),
 * and the app must see nothing.
 *
 * The app here listens on port 80 of its own loopback address (we are root in CI), exactly
 * where a probe without a port would land, and records every request it gets.
 */
const PROTOTYPE_NAMES = Object.getOwnPropertyNames(Object.prototype);

let app: Server;
let appAddress: string;
let appPort: number;
const seen: string[] = [];
let admin: AdminServer;
let base: string;
const registry = new Registry();

async function listenApp(host: string, port: number): Promise<number> {
  return await new Promise<number>((resolve, reject) => {
    app.once('error', reject);
    app.listen(port, host, () => resolve((app.address() as { port: number }).port));
  });
}

beforeAll(async () => {
  app = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    res.writeHead(204).end();
  });
  appAddress = `127.${randomInt(1, 255)}.${randomInt(0, 255)}.${randomInt(1, 255)}`;
  try {
    appPort = await listenApp(appAddress, 80);
  } catch {
    // Not root: any port still proves the 404, only the "port 80" landing spot is lost.
    appPort = await listenApp(appAddress, 0);
  }
  // The probe table as the injector writes it and the sidecar reads it.
  const config = readSidecarConfig({
    MESHLET_NAMESPACE: 'shop',
    MESHLET_SERVICE_ACCOUNT: 'orders',
    MESHLET_APP_ADDRESS: appAddress,
    MESHLET_APP_PROBES: JSON.stringify({ 'web/liveness': { port: appPort, path: '/healthz', scheme: 'HTTP' } }),
  });
  admin = new AdminServer({ readiness: () => ({ ready: true, checks: {} }), registry, connections: () => [], appProbes: config.appProbes, appAddress: config.appAddress });
  const { port } = await admin.listen(0, '127.0.0.1');
  base = `http://127.0.0.1:${port}`;
});

afterAll(async () => {
  await admin?.close();
  await new Promise((r) => app?.close(r));
});

describe('admin /app-health prototype lookup (issue 11 item 8)', () => {
  it('a declared probe is forwarded to the app', async () => {
    expect((await fetch(`${base}/app-health/web/liveness`)).status).toBe(204);
    expect(seen).toEqual(['GET /healthz']);
    seen.length = 0;
  });

  const names = [...PROTOTYPE_NAMES, ...PROTOTYPE_NAMES.map((n) => `${n}/liveness`), ...PROTOTYPE_NAMES.map((n) => `web/${n}`), 'web/liveness/__proto__', 'web'];
  it.each(names)('/app-health/%s is an unknown probe: 404, nothing sent to the app', async (name) => {
    const res = await fetch(`${base}/app-health/${name}`);
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: 'unknown_probe' });
    expect(seen).toEqual([]);
  });

  it('covers every Object.prototype name, and counts each refusal', async () => {
    expect(PROTOTYPE_NAMES).toEqual(expect.arrayContaining(['__proto__', 'constructor', 'toString', 'valueOf', 'hasOwnProperty', 'isPrototypeOf', '__defineGetter__', '__lookupSetter__', 'toLocaleString', 'propertyIsEnumerable']));
    const metrics = parseExposition(await (await fetch(`${base}/metrics`)).text());
    const refused = metrics.samples.find((s) => s.name === 'meshlet_admin_refusals_total' && s.labels.endpoint === 'app-health' && s.labels.reason === 'unknown_probe');
    expect(refused?.value).toBe(names.length);
    expect(seen).toEqual([]);
  });
});

describe('admin /app-health prototype lookup on a real `meshlet sidecar` process', () => {
  it('every Object.prototype name is a 404 and the app sees nothing; the declared probe still works', async () => {
    const mesh = await meshOfTwo();
    const sidecar = await startSidecarProcess({
      ...mesh.ordersEnv,
      MESHLET_APP_ADDRESS: appAddress,
      MESHLET_APP_PROBES: JSON.stringify({ 'web/readiness': { port: appPort, path: '/ready', scheme: 'HTTP' } }),
    });
    try {
      const admin = `http://127.0.0.1:${mesh.ports.ordersAdmin}`;
      for (const name of PROTOTYPE_NAMES) expect((await fetch(`${admin}/app-health/${name}`)).status, name).toBe(404);
      expect(seen).toEqual([]);
      expect((await fetch(`${admin}/app-health/web/readiness`)).status).toBe(204);
      expect(seen).toEqual(['GET /ready']);
    } finally {
      expect(await sidecar.stop()).toBe(0);
      await mesh.close();
    }
  });
});
