// The network-namespace pod harness for the e2e suite (see docs/e2e.md). The pods themselves
// live in src/dev/netns (`meshlet demo --pods` runs them too); only what is test-specific stays here.
export { e2eAvailability, type E2eAvailability, type IptablesTools } from '../../../src/dev/netns/availability.ts';
export { e2eSkipped } from './availability.ts';
export { Cluster, type ClusterOptions, type Service, type ServicePort } from '../../../src/dev/netns/cluster.ts';
export { Pod, type ExecOptions, type SpawnOptions } from '../../../src/dev/netns/pod.ts';
export { PodProcess, type ProcessExit } from '../../../src/dev/netns/pod-process.ts';
export { HarnessError, type HarnessErrorCode } from '../../../src/dev/netns/errors.ts';
export { sweepLeftovers } from '../../../src/dev/netns/leftover-sweeper.ts';
export { waitFor } from '../../../src/dev/netns/wait.ts';
export { nodeBinary, repoRoot } from '../../../src/dev/netns/node-binary.ts';
export { runCommand, mustRun, type CommandResult } from '../../../src/dev/netns/command-runner.ts';
export { readInjectedPod, mountEnv, type ContainerRun, type InjectedPodSpec } from '../../../src/dev/netns/injected-pod.ts';
