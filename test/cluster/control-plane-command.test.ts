// `npm run cluster:up` / `npm run cluster:down` (README "Real control plane tests"): the by-hand
// control plane starts, answers kubectl with the kubeconfig it prints, and stops leaving no
// process and no directory behind.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { clusterSkip } from './support.ts';

const skip = clusterSkip();
const ROOT = new URL('../..', import.meta.url).pathname;

function npmRun(script: string): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync('npm', ['run', '-s', script], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe.skipIf(skip !== '')('npm run cluster:up / cluster:down', () => {
  it('starts a control plane kubectl can use, refuses a second one, and stops it leaving nothing', () => {
    const up = npmRun('cluster:up');
    expect(up.code, up.stderr).toBe(0);
    try {
      const kubeconfig = /^export KUBECONFIG=(.+)$/m.exec(up.stdout)?.[1];
      const kubectl = /^\s+kubectl\s+(\S+)$/m.exec(up.stdout)?.[1];
      const logs = /^\s+logs\s+(\S+)\/\*\.log$/m.exec(up.stdout)?.[1];
      expect([kubeconfig, kubectl, logs].every(Boolean), up.stdout).toBe(true);
      const ns = spawnSync(kubectl!, ['--kubeconfig', kubeconfig!, 'get', 'namespace', 'kube-system', '-o', 'name'], { encoding: 'utf8' });
      expect(ns.stdout.trim(), ns.stderr).toBe('namespace/kube-system');
      const again = npmRun('cluster:up');
      expect(again.code).toBe(1);
      expect(again.stderr).toContain('a control plane is already up');

      const down = npmRun('cluster:down');
      expect(down.code, down.stderr).toBe(0);
      expect(existsSync(logs!)).toBe(false);
      const left = spawnSync('pgrep', ['-f', logs!], { encoding: 'utf8' });
      expect(left.stdout.trim()).toBe('');
    } finally {
      npmRun('cluster:down');
    }
  });
});
