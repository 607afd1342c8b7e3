import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { costByOwner, topSelfTime } from '../../bench/lib/cpu-profile.ts';

// A hand-made .cpuprofile with the shapes `node --cpu-prof` writes: a meshlet module (artifact
// path) that calls node:http, which ends in a native write; node:http's parser with no meshlet
// frame above it; V8's pseudo-frames; idle time, which is left out of the busy share.
const frame = (id: number, functionName: string, url: string, hitCount: number, children: number[] = []) => ({
  id,
  callFrame: { functionName, url, lineNumber: 0, columnNumber: 0, scriptId: '0' },
  hitCount,
  children,
});
const PROFILE = {
  nodes: [
    frame(1, '(root)', '', 0, [2, 3, 6, 7, 8]),
    frame(2, 'onHeaders', 'file:///app/src/data-plane/proxy/http/forward-request.js', 10, [4]),
    frame(3, 'parserOnHeadersComplete', 'node:_http_common', 5),
    frame(4, 'write_', 'node:_http_outgoing', 5, [5]),
    frame(5, 'writev', '', 30),
    frame(6, '(garbage collector)', '', 20),
    frame(7, '(program)', '', 25),
    frame(8, '(idle)', '', 900),
  ],
  startTime: 0,
  endTime: 1,
  samples: [],
  timeDeltas: [],
};

describe('bench/lib/cpu-profile.ts', () => {
  let dir: string;
  let file: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'meshlet-cpuprofile-'));
    file = join(dir, 'CPU.test.cpuprofile');
    await writeFile(file, JSON.stringify(PROFILE));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('charges each busy sample to the meshlet module nearest its leaf, naming native leaves, idle left out', () => {
    const rows = Object.fromEntries(costByOwner(file).map((r) => [r.owner, r.percent]));
    expect(rows).toEqual({
      'src/data-plane/proxy/http/forward-request → native writev': (30 / 95) * 100,
      '(program)': (25 / 95) * 100,
      '(garbage collector)': (20 / 95) * 100,
      'src/data-plane/proxy/http/forward-request': (15 / 95) * 100,
      'node:_http_common': (5 / 95) * 100,
    });
  });

  it('lists self time by function over all samples', () => {
    const top = topSelfTime(file, 2);
    expect(top.map((r) => r.fn)).toEqual(['(idle) :1', 'writev :1']);
    expect(top[0]!.percent).toBeCloseTo((900 / 995) * 100, 5);
  });
});
