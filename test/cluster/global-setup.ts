// Runs once before the cluster suites: builds the Kubernetes binaries when they are missing
// (test/cluster/build/kubernetes.sh; about 9 min the first time, nothing afterwards), or
// says loudly why the suites will be skipped. SPIRE (test/cluster/build/spire.sh, ~10-17 min
// cold) is built here too when it can run, since a suite's beforeAll has a hook timeout and a
// global setup has none; its suite calls the script again, which is then a no-op.
// Teardown kills whatever control plane of this run a crashed worker left behind.
import { randomUUID } from 'node:crypto';
import type { TestProject } from 'vitest/node';
import { buildBinaries, clusterSkipReason, findBinaries } from './binaries.ts';
import { reapRun } from './control-plane.ts';
import { buildSpire, spireSkipReason } from './support/spire.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Identifies this run's control planes, so teardown reaps only its own. */
    clusterRunId: string;
    /** Why the Kubernetes suites cannot run here; empty when they can. */
    clusterSkipReason: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const runId = randomUUID();
  project.provide('clusterRunId', runId);
  const reason = clusterSkipReason();
  project.provide('clusterSkipReason', reason ?? '');
  if (reason) {
    process.stderr.write(`\n[test:cluster] SKIPPING the Kubernetes control-plane suites: ${reason}\n\n`);
  } else if (!findBinaries().complete) {
    const t0 = Date.now();
    process.stderr.write('[test:cluster] building kube-apiserver, kube-controller-manager, kubectl and etcd (test/cluster/build/kubernetes.sh)\n');
    await buildBinaries();
    process.stderr.write(`[test:cluster] built in ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
  }
  if (spireSkipReason() === undefined) {
    const t0 = Date.now();
    process.stderr.write('[test:cluster] making sure spire-server and spire-agent are built (test/cluster/build/spire.sh)\n');
    await buildSpire();
    process.stderr.write(`[test:cluster] SPIRE binaries ready in ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
  }
  return async () => {
    const n = await reapRun(runId);
    if (n > 0) process.stderr.write(`[test:cluster] stopped ${n} control plane(s) a test left running\n`);
  };
}
