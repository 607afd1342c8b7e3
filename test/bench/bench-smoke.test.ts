import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const REPO = join(import.meta.dirname, '..', '..');

// `npm run bench -- --quick` as a child process, into a temp dir (never over bench/results).
// Asserts only that every figure was produced — never its size: speed belongs to the bench.
describe('npm run bench -- --quick', () => {
  let out: string;
  let stderr = '';
  let results: {
    machine: { nginx: string | null };
    topology: { nginx: string; meshlet: { mode: string } };
    headline: string;
    scenarios: Record<string, { targets: Record<string, { supported: boolean; note?: string; latencyUs?: Record<string, number>; operationsPerSec?: number; cpuSecondsPer1k?: Record<string, number> }> }>;
    peakRss: { process: string; peakRssBytes: number }[];
    issueTargets: { target: string; met: boolean | null }[];
    micro: { policyDecision: { case: string; p99Us: number }[]; admissionReview: { reviewsPerSec?: number; available?: false } };
  };

  beforeAll(async () => {
    out = await mkdtemp(join(tmpdir(), 'meshlet-bench-smoke-'));
    const r = await run(process.execPath, [join(REPO, 'bench', 'run.ts'), '--quick', '--out', out], { cwd: REPO, timeout: 170_000, maxBuffer: 16 << 20 });
    stderr = r.stderr;
    results = JSON.parse(await readFile(join(out, 'results.json'), 'utf8'));
  }, 180_000);

  afterAll(async () => {
    if (out) await rm(out, { recursive: true, force: true });
  });

  it('writes results.json, results.md and latency.svg', async () => {
    for (const f of ['results.json', 'results.md', 'latency.svg']) expect((await stat(join(out, f))).size).toBeGreaterThan(0);
    expect(await readFile(join(out, 'latency.svg'), 'utf8')).toMatch(/^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"[\s\S]*<\/svg>\n$/);
    const md = await readFile(join(out, 'results.md'), 'utf8');
    expect(md).toContain('## Issue 5 targets');
    expect(md).toContain('meshlet / nginx');
  });

  it('measures every scenario for direct and meshlet, with numbers', () => {
    expect(Object.keys(results.scenarios).sort()).toEqual(['grpc-unary', 'http-rate-500', 'http-saturation', 'new-connections']);
    for (const id of ['http-rate-500', 'http-saturation', 'new-connections']) {
      for (const name of ['direct', 'meshlet']) {
        const t = results.scenarios[id]!.targets[name]!;
        expect(t.supported, `${id}/${name}: ${t.note ?? ''}`).toBe(true);
        for (const p of ['p50Us', 'p90Us', 'p99Us', 'p999Us']) expect(Number.isFinite(t.latencyUs![p])).toBe(true);
        expect(t.operationsPerSec).toBeGreaterThan(0);
      }
      expect(Object.keys(results.scenarios[id]!.targets.meshlet!.cpuSecondsPer1k!).length).toBeGreaterThan(0);
    }
    // gRPC through meshlet is either measured or says why not — never silently absent.
    const grpcMeshlet = results.scenarios['grpc-unary']!.targets.meshlet!;
    expect(grpcMeshlet.supported ? typeof grpcMeshlet.operationsPerSec : grpcMeshlet.note).toMatch(/number|not supported yet/);
    expect(results.peakRss.some((p) => p.process.startsWith('meshlet/') && p.peakRssBytes > 0)).toBe(true);
  });

  it('measures nginx when present, and says it is missing when not', () => {
    if (results.machine.nginx === null) {
      expect(results.topology.nginx).toMatch(/MISSING.*apt-get install nginx-light/);
      expect(results.scenarios['http-saturation']!.targets.nginx).toBeUndefined();
    } else {
      const t = results.scenarios['http-saturation']!.targets.nginx!;
      expect(t.supported).toBe(true);
      expect(Number.isFinite(t.latencyUs!.p50Us)).toBe(true);
    }
  });

  it('evaluates issue 5 targets and runs the micro-benchmarks', () => {
    expect(results.issueTargets.map((c) => c.target)).toContain('added p50 per hop, meshlet / nginx');
    expect(results.micro.policyDecision.map((r) => r.case)).toContain('exact path');
    expect(results.micro.policyDecision.every((r) => Number.isFinite(r.p99Us))).toBe(true);
    expect(results.micro.admissionReview.reviewsPerSec ?? results.micro.admissionReview.available).not.toBeUndefined();
  });

  it('reports progress on the terminal', () => {
    expect(stderr).toMatch(/\[bench +\d+s\] http-rate-500/);
    expect(stderr).toMatch(/wrote .*results\.json/);
  });
});
