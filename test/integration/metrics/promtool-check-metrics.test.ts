import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { h2ViaFrontend, startTwoSidecars, viaFrontend, type TwoSidecars } from './two-sidecars.ts';

/**
 * Issue 13: `promtool check metrics` — Prometheus' own linter — failed on what a sidecar serves
 * (prom-client's nodejs_active_*_total gauges: `_total` is for counters). This runs the real
 * promtool on a real sidecar's /metrics, text format, after traffic of every kind has made its
 * series. promtool comes from test/support/build-promtool.sh (.ci/run builds it before
 * `npm test`); without it (no Go toolchain) the test is skipped and says why.
 */
const version = /^PROMTOOL_VERSION=(\S+)$/m.exec(readFileSync(new URL('../../support/build-promtool.sh', import.meta.url), 'utf8'))![1]!;
const promtool = process.env.MESHLET_PROMTOOL ?? join(process.env.MESHLET_CLUSTER_CACHE ?? join(homedir(), '.cache', 'meshlet-cluster'), 'bin', `promtool-${version}`);
const available = existsSync(promtool);
if (!available) console.warn(`promtool-check-metrics: skipped: no ${promtool} (run bash test/support/build-promtool.sh; it needs Go)`);

let two: TwoSidecars | undefined;
beforeAll(async () => {
  if (!available) return;
  two = await startTwoSidecars();
  await viaFrontend(two.mesh, 'orders.shop:80', '/orders/1');
  await viaFrontend(two.mesh, 'orders.shop:80', '/admin');
  await viaFrontend(two.mesh, 'imposter.shop:80', '/orders/1');
  await viaFrontend(two.mesh, 'nowhere.shop:80', '/');
  await h2ViaFrontend(two.mesh, 'orders.shop:80', '/orders/2');
});
afterAll(async () => {
  await two?.stop();
});

describe('promtool check metrics', () => {
  it.skipIf(!available)(`passes on both sidecars' /metrics (promtool ${version})`, async () => {
    for (const port of [two!.mesh.ports.frontendAdmin, two!.mesh.ports.ordersAdmin]) {
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
      const text = await res.text();
      expect(text).toContain('meshlet_requests_total');
      const r = spawnSync(promtool, ['check', 'metrics'], { input: text, encoding: 'utf8' });
      expect({ status: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({ status: 0, stdout: '', stderr: '' });
    }
  });
});
