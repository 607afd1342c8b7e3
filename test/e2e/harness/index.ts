// The network-namespace pod harness for the e2e suite (see docs/e2e.md).
export { e2eAvailability, e2eSkipped, type E2eAvailability, type IptablesTools } from './availability.ts';
export { Cluster, type ClusterOptions, type Service, type ServicePort } from './cluster.ts';
export { Pod, type ExecOptions, type SpawnOptions } from './pod.ts';
export { PodProcess, type ProcessExit } from './pod-process.ts';
export { HarnessError, type HarnessErrorCode } from './errors.ts';
export { sweepLeftovers } from './leftover-sweeper.ts';
export { waitFor } from './wait.ts';
export { nodeBinary, repoRoot } from './node-binary.ts';
export { runCommand, mustRun, type CommandResult } from './command-runner.ts';
export { readInjectedPod, mountEnv, type ContainerRun, type InjectedPodSpec } from './injected-pod.ts';
