// Where the Kubernetes programs built by test/cluster/build/kubernetes.sh live, and whether
// they can be built here. The script is the one place the versions are pinned.
import { execFileSync, spawn } from 'node:child_process';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BUILD_SCRIPT = fileURLToPath(new URL('./build/kubernetes.sh', import.meta.url));

export interface ClusterBinaries {
  'kube-apiserver': string;
  'kube-controller-manager': string;
  kubectl: string;
  etcd: string;
}

export function clusterCacheDir(): string {
  return process.env['MESHLET_CLUSTER_CACHE'] || join(homedir(), '.cache', 'meshlet-cluster');
}

/** The binaries' paths (from the build script, which knows the versions) and whether all exist. */
export function findBinaries(): { paths: ClusterBinaries; complete: boolean } {
  let out: string;
  let complete = true;
  try {
    out = execFileSync('bash', [BUILD_SCRIPT, '--check'], { encoding: 'utf8' });
  } catch (err) {
    const e = err as { status?: number; stdout?: string };
    if (e.status !== 1 || !e.stdout) throw err;
    out = e.stdout;
    complete = false;
  }
  const paths = Object.fromEntries(out.trim().split('\n').map((l) => l.split('=', 2) as [string, string])) as unknown as ClusterBinaries;
  return { paths, complete };
}

export function goAvailable(): boolean {
  try {
    execFileSync('go', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Why the cluster suites cannot run here, or undefined when they can (binaries built or buildable). */
export function clusterSkipReason(): string | undefined {
  if (process.platform !== 'linux') return `the control-plane tests run on Linux only (this is ${process.platform})`;
  if (findBinaries().complete) return undefined;
  if (!goAvailable()) {
    return `Go is not on PATH and the Kubernetes binaries are not cached in ${join(clusterCacheDir(), 'bin')}. ` +
      'Install Go >= 1.26 (with the Go module proxy reachable) and rerun, or run test/cluster/build/kubernetes.sh where Go is and set MESHLET_CLUSTER_CACHE.';
  }
  return undefined;
}

/** Runs the build script with its output on this process's stderr; rejects on failure. */
export function buildBinaries(): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [BUILD_SCRIPT], { stdio: ['ignore', 'ignore', 'inherit'] });
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${BUILD_SCRIPT} exited ${code}`))));
  });
}
