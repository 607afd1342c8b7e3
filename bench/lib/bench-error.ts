import { MeshletError } from '../../src/common/errors/meshlet-error.ts';

export type BenchErrorCode =
  /** A process of the topology (sidecar, nginx, upstream) exited before it was ready. */
  | 'BENCH_PROCESS_EXITED'
  /** `meshlet sidecar` exited or never answered /ready = 200: there is no stand-in to measure instead. */
  | 'BENCH_SIDECAR_NOT_STARTED'
  /** The meshlet pair did not answer 403 on the route its policy closes: the figures would not be of the pod configuration. */
  | 'BENCH_POLICY_NOT_ENFORCED'
  /** A micro-benchmark exited non-zero, printed nothing or ran past its time bound (its result files are still written). */
  | 'BENCH_MICRO_FAILED'
  /** A process did not become ready (port or /ready) before the deadline. */
  | 'BENCH_NOT_READY'
  /** A target failed its warm-up (errors, or no request answered): its figures would be meaningless. */
  | 'BENCH_WARMUP_FAILED'
  /** `npm run build` (scripts/build-dist.mjs) failed: there is no production artifact to measure (--sources runs the TypeScript sources). */
  | 'BENCH_BUILD_FAILED'
  /** The open-files limit (ulimit -n) of the bench or a proxy is too low for --idle-connections. */
  | 'BENCH_FD_LIMIT'
  /** A connection of the idle-connection scenario failed, or the proxy closed it before the figures were read. */
  | 'BENCH_IDLE_CONNECTION_FAILED'
  /** A bad flag on the command line. */
  | 'BENCH_USAGE';

/** Why the bench could not produce a figure; never swallowed into a fake number. */
export class BenchError extends MeshletError {
  declare readonly code: BenchErrorCode;
  constructor(code: BenchErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
  }
}
