// Federation in the real `meshlet sidecar` process, configured by its environment as the
// injector would: the workload-api combination refused at start (exit 1, one precise line, no
// stack trace); with the files source, a partner's caller admitted once its bundle lands in the
// federation directory and the change logged, without a restart.
import { spawn } from 'node:child_process';
import * as http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubeletWrite } from '../../support/kubelet-volume.ts';
import { freePorts } from '../../support/free-port.ts';
import { bundleJson, callInbound, mesh, ORDERS_POLICY, svidFiles, until, type Mesh, type SvidFiles } from './fixture.ts';

const BIN = fileURLToPath(new URL('../../../bin/meshlet.js', import.meta.url));

function run(env: Record<string, string>) {
  const child = spawn(process.execPath, [BIN, 'sidecar'], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, out: () => stdout, err: () => stderr };
}

describe('meshlet sidecar process with MESHLET_FEDERATION_BUNDLES', () => {
  let dir: string;
  let a: Mesh;
  let b: Mesh;
  let payments: SvidFiles;
  let app: http.Server;
  let running: ReturnType<typeof run> | undefined;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'meshlet-federation-process-'));
    [a, b] = await Promise.all([mesh('cluster.local'), mesh('partner.example')]);
    payments = await svidFiles(b, '/ns/billing/sa/payments');
    app = http.createServer((_req, res) => res.end('ok'));
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  });
  afterAll(async () => {
    if (running && running.child.exitCode === null) {
      running.child.kill('SIGTERM');
      await running.exited;
    }
    app.closeAllConnections();
    await new Promise((r) => app.close(r));
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses to start with the workload-api source, saying why', async () => {
    const p = run({ MESHLET_NAMESPACE: 'shop', MESHLET_SERVICE_ACCOUNT: 'orders', MESHLET_IDENTITY_SOURCE: 'workload-api', MESHLET_FEDERATION_BUNDLES: '/var/run/meshlet/federation' });
    expect(await p.exited).toBe(1);
    expect(p.err()).toContain('MESHLET_CONFIG_INVALID');
    expect(p.err()).toContain('MESHLET_FEDERATION_BUNDLES="/var/run/meshlet/federation": not valid with MESHLET_IDENTITY_SOURCE=workload-api: SPIRE delivers the bundles of federated trust domains itself');
    expect(p.err()).not.toMatch(/\n\s+at /);
  });

  it('admits a federated caller once its bundle is written, without a restart', async () => {
    const appPort = (app.address() as AddressInfo).port;
    const [admin, outbound, catchAll, inbound] = await freePorts(4);
    const federationDir = join(dir, 'federation');
    await kubeletWrite(join(dir, 'svid'), { ...(await svidFiles(a, '/ns/shop/sa/orders')) });
    await kubeletWrite(join(dir, 'policy'), { 'policy.yaml': ORDERS_POLICY.replaceAll('APP_PORT', String(appPort)) });
    await kubeletWrite(federationDir, {});
    const p = (running = run({
      MESHLET_NAMESPACE: 'shop',
      MESHLET_SERVICE_ACCOUNT: 'orders',
      MESHLET_IDENTITY_SOURCE: 'files',
      MESHLET_SVID_DIR: join(dir, 'svid'),
      MESHLET_POLICY_DIR: join(dir, 'policy'),
      MESHLET_FEDERATION_BUNDLES: federationDir,
      MESHLET_INBOUND_PORTS: `${appPort}:${inbound}/http`,
      MESHLET_INBOUND_CATCHALL_PORT: String(catchAll),
      MESHLET_ADMIN_PORT: String(admin),
      MESHLET_ADMIN_ADDRESS: '127.0.0.1',
      MESHLET_OUTBOUND_PORT: String(outbound),
      MESHLET_LOG_LEVEL: 'info',
    }));
    await until(() => p.out().includes('meshlet sidecar: ready') || p.child.exitCode !== null, 'the sidecar to be ready', 60_000);
    expect(p.out(), p.err()).toContain('meshlet sidecar: ready');

    await expect(callInbound(inbound!, payments, a.root.bundlePem, '/partner/orders')).rejects.toThrow();
    await kubeletWrite(federationDir, { 'partner.example.json': bundleJson(b, 1) });
    await until(() => p.err().includes('"event":"federation_updated"'), 'the federation change to be logged');
    expect(await callInbound(inbound!, payments, a.root.bundlePem, '/partner/orders')).toMatchObject({ status: 200 });
    const metrics = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
    expect(metrics).toMatch(/^meshlet_federation_trust_domains 1$/m);
    expect(metrics).toMatch(/^meshlet_federation_bundle_errors_total\{reason="rollback"\} 0$/m);
    expect(metrics).toMatch(/^meshlet_tls_handshake_failures_total\{direction="inbound",reason="unknown_ca"\} 1$/m);
    p.child.kill('SIGTERM');
    expect(await p.exited).toBe(0);
  });
});
