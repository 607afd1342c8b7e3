// Micro-benchmark of a policy reload: how long the event loop (and so every request) stalls,
// how long the reload takes and what it costs in memory, for a large policy.
// Run: node --expose-gc bench/micro/policy-reload.ts [--routes N] [--style compact|verbose] [--root DIR]
//   --root: a checkout whose src/data-plane/policy/store.ts to measure (default: this one), to compare versions.
// Issue 11 item 7: a 10,000-route policy (848 KB) took the sidecar from 117 to 335 MB and request
// latency to 1.4 s during the reload.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { manyRoutesPolicy } from '../../test/unit/policy/hostile-policies.ts';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : fallback;
}

/** A valid one-server policy of `n` routes; compact is the bench's flow style (~110 B a route), verbose block style (~230 B). */
export function bigPolicy(n: number, style: 'compact' | 'verbose'): string {
  return manyRoutesPolicy(n, { verbose: style === 'verbose' });
}

const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);
const mb = (b: number) => Math.round(b / 1e5) / 10;

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const routes = Number(arg('routes', '1000'));
  const style = arg('style', 'compact') as 'compact' | 'verbose';
  const root = resolve(arg('root', join(import.meta.dirname, '../..')));
  const { PolicyStore } = (await import(pathToFileURL(join(root, 'src/data-plane/policy/store.ts')).href)) as typeof import('../../src/data-plane/policy/store.ts');
  const { kubeletWrite } = (await import(pathToFileURL(join(root, 'src/dev/netns/kubelet-volume.ts')).href)) as typeof import('../../src/dev/netns/kubelet-volume.ts');

  const dir = await mkdtemp(join(tmpdir(), 'meshlet-reload-bench-'));
  const small = bigPolicy(5, style);
  const big = bigPolicy(routes, style);
  await kubeletWrite(dir, { 'policy.yaml': small });
  // reload() by hand, no watcher: the reload measured is exactly one.
  const store = new PolicyStore({ dir, self: { namespace: 'shop', serviceAccount: 'orders' }, meshDefault: 'deny', pollMs: 0 });
  await store.reload();
  gc();
  await new Promise((r) => setTimeout(r, 200));
  const before = process.memoryUsage();

  // The stall a request would see: the event loop's longest delay during the reload.
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  let peakRss = before.rss;
  let last = performance.now();
  let maxGap = 0;
  const sampler = setInterval(() => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
  }, 2);
  await kubeletWrite(dir, { 'policy.yaml': big });
  histogram.enable();
  const t0 = performance.now();
  let outcome: string;
  try {
    const ev = await store.reload();
    outcome = `${ev.result}${ev.errors ? ` ${ev.errors[0]!.code}` : ''}${(ev as { parsedIn?: string }).parsedIn ? ` (parsed ${(ev as { parsedIn?: string }).parsedIn})` : ''}`;
  } catch (err) {
    outcome = `THREW ${(err as Error).message}`;
  }
  const reloadMs = performance.now() - t0;
  // Let the timers that were held up fire, so the stall is recorded.
  await new Promise((r) => setTimeout(r, 50));
  histogram.disable();
  clearInterval(sampler);
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
  const heapRight = process.memoryUsage().heapUsed;
  gc();
  await new Promise((r) => setTimeout(r, 500));
  gc();
  const after = process.memoryUsage();
  store.close();
  await rm(dir, { recursive: true, force: true });
  console.log(
    JSON.stringify({
      node: process.version,
      root,
      routes,
      style,
      bytes: Buffer.byteLength(big),
      outcome,
      reloadMs: Math.round(reloadMs),
      maxEventLoopStallMs: Math.round(Math.max(histogram.max / 1e6, maxGap - 2)),
      rssMB: { before: mb(before.rss), peak: mb(peakRss), after: mb(after.rss) },
      heapMB: { before: mb(before.heapUsed), rightAfter: mb(heapRight), afterGc: mb(after.heapUsed) },
    }),
  );
}
