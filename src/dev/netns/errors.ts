import { MeshletError } from '../../common/errors/meshlet-error.ts';

export type HarnessErrorCode =
  /** `ip`, `iptables-restore`, ... exited non-zero (the message carries its stderr). */
  | 'E2E_COMMAND_FAILED'
  /** A pod, service or process name that cannot become a netns / hosts entry. */
  | 'E2E_BAD_NAME'
  /** A pod or service name used twice in one cluster. */
  | 'E2E_DUPLICATE'
  /** Every address of the run's /24 is taken. */
  | 'E2E_ADDRESSES_EXHAUSTED'
  /** The cluster was already torn down. */
  | 'E2E_CLUSTER_DESTROYED'
  /** A waited-for condition (log line, listening port) did not come before the deadline. */
  | 'E2E_TIMEOUT'
  /** A process exited while the test was still waiting for it. */
  | 'E2E_PROCESS_EXITED'
  /** An injected pod manifest uses something the harness cannot run (e.g. an unknown fieldRef). */
  | 'E2E_UNSUPPORTED_SPEC';

/** A failure of the network-namespace pod harness itself (not of the code under test). */
export class HarnessError extends MeshletError {
  declare readonly code: HarnessErrorCode;
  constructor(code: HarnessErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
  }
}
