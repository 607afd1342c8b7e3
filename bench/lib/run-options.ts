/** The knobs every scenario reads; set by bench/run.ts from its flags (`--quick` shrinks them all). */
export interface RunOptions {
  rounds: number;
  /** Length of each measured run. */
  seconds: number;
  /** Length of the warm-up before each measured run (same load, figures discarded). */
  warmupSeconds: number;
  /** Warm twice before the first round (the JIT of Node processes is still settling after one). */
  primeFirstRound: boolean;
  /** Fixed request rates (req/s over all connections) of the HTTP keep-alive scenario. */
  rates: number[];
  /** Connections autocannon holds open (keep-alive). */
  connections: number;
  /** Pause between two requests of the µs sampler. */
  samplerIntervalMs: number;
  /** Concurrent callers of the gRPC and new-connection scenarios. */
  concurrency: number;
  log: (line: string) => void;
}
