import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { heapSettingsFor, memoryQuantityBytes, MIN_PROXY_MEMORY_LIMIT_MIB, NON_HEAP_RESERVE_MIB, proxyNodeFlags, PROXY_MALLOC_ARENA_MAX } from '../../../src/control-plane/injector/patch/heap-settings.ts';
import { DEFAULT_INJECTION_SETTINGS, injectPod, applyJsonPatch, type Pod } from '../../../src/control-plane/injector/patch/index.ts';
import { DEFAULT_PROXY_RESOURCES } from '../../../src/control-plane/injector/patch/containers.ts';
import { loadPod } from './golden-support.ts';

const MIB = 1024 * 1024;

describe('memory quantities', () => {
  it.each([
    ['256Mi', 256 * MIB],
    ['1Gi', 1024 * MIB],
    ['0.5Gi', 512 * MIB],
    ['300M', 300e6],
    ['1e9', 1e9],
    ['128974848', 128974848],
    ['1.5k', 1500],
  ])('%s is %d bytes', (q, bytes) => {
    expect(memoryQuantityBytes(q)).toBe(bytes);
  });
  it.each([['500m'], ['1GB'], [''], ['Mi']])('%s is not a byte quantity', (q) => {
    expect(memoryQuantityBytes(q)).toBeNull();
  });
});

describe('the sidecar heap, sized from the memory limit', () => {
  it.each([[96], [128], [256], [512], [1024], [4096]])('%d Mi: heap + reserve stay within three quarters of the limit', (mib) => {
    const h = heapSettingsFor(mib * MIB);
    expect(h.maxOldSpaceMib).toBeGreaterThanOrEqual(16);
    expect(h.maxOldSpaceMib + 3 * h.maxSemiSpaceMib + NON_HEAP_RESERVE_MIB).toBeLessThanOrEqual(Math.max(mib * 0.75, 16 + 3 + NON_HEAP_RESERVE_MIB));
  });

  it('grows with the limit and never shrinks', () => {
    let last = heapSettingsFor(MIN_PROXY_MEMORY_LIMIT_MIB * MIB);
    for (let mib = MIN_PROXY_MEMORY_LIMIT_MIB; mib <= 8192; mib *= 2) {
      const h = heapSettingsFor(mib * MIB);
      expect(h.maxOldSpaceMib).toBeGreaterThanOrEqual(last.maxOldSpaceMib);
      expect(h.maxSemiSpaceMib).toBeGreaterThanOrEqual(last.maxSemiSpaceMib);
      last = h;
    }
  });

  it('Node takes the flags on its command line and caps its heap there', () => {
    const limit = Number(execFileSync(process.execPath, [...proxyNodeFlags(256 * MIB), '-p', "require('node:v8').getHeapStatistics().heap_size_limit"], { encoding: 'utf8' }).trim());
    const h = heapSettingsFor(256 * MIB);
    // V8's limit is the old space plus the young generation it reserves next to it.
    expect(limit).toBeGreaterThanOrEqual(h.maxOldSpaceMib * MIB);
    expect(limit).toBeLessThanOrEqual((h.maxOldSpaceMib + 3 * h.maxSemiSpaceMib + 1) * MIB);
  });

  it("the injector puts the flags on the sidecar's command line from its memory limit, default and annotated", () => {
    const proxyEnv = (annotations: Record<string, string>) => {
      const pod = loadPod('plain');
      pod.metadata = { ...pod.metadata, annotations };
      const r = injectPod(pod, 'shop', DEFAULT_INJECTION_SETTINGS);
      if (r.outcome !== 'injected') throw new Error(`not injected: ${r.outcome}`);
      const injected = applyJsonPatch(pod, r.patch) as Pod;
      const proxy = [...(injected.spec.initContainers ?? []), ...injected.spec.containers].find((c) => (c as { name: string }).name === 'meshlet-proxy') as unknown as {
        command: string[];
        env: { name: string; value?: string }[];
        resources: { limits: { memory: string } };
      };
      return { command: proxy.command, nodeOptions: proxy.env.find((e) => e.name === 'NODE_OPTIONS')?.value, arenas: proxy.env.find((e) => e.name === 'MALLOC_ARENA_MAX')?.value, limit: proxy.resources.limits.memory };
    };
    const arenas = String(PROXY_MALLOC_ARENA_MAX);
    const command = (bytes: number) => ['node', ...proxyNodeFlags(bytes), '/app/bin/meshlet.js'];
    expect(proxyEnv({})).toEqual({ command: command(memoryQuantityBytes(DEFAULT_PROXY_RESOURCES.memoryLimit)!), nodeOptions: undefined, arenas, limit: DEFAULT_PROXY_RESOURCES.memoryLimit });
    expect(proxyEnv({ 'meshlet.io/proxy-memory-limit': '1Gi' })).toEqual({ command: command(1024 * MIB), nodeOptions: undefined, arenas, limit: '1Gi' });
    // docs/injector.md states this one.
    expect(proxyNodeFlags(256 * MIB)).toEqual(['--max-old-space-size=141', '--max-semi-space-size=1', '--single-threaded-gc']);
  });
});
