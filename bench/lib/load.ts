import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

/** One autocannon run: closed loop (no rate) or fixed rate over all connections. */
export interface LoadSpec {
  url: string;
  connections: number;
  seconds: number;
  headers: Record<string, string>;
  /** Requests per second over all connections; absent = closed loop, as fast as the target answers. */
  overallRate?: number;
}

export interface LoadResult {
  requests: number;
  requestsPerSec: number;
  errors: number;
  /** autocannon's own percentiles: whole milliseconds (see BENCH-NOTES), reported labelled as such. */
  latencyMs: { p50: number; p90: number; p99: number; p999: number };
}

/** The load generator: one autocannon process for the whole bench, one run at a time. */
export class LoadGenerator {
  readonly #child: ChildProcess;
  #exit: string | null = null;

  constructor() {
    this.#child = fork(join(import.meta.dirname, 'autocannon-process.ts'), [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    this.#child.once('exit', (code, signal) => (this.#exit = `the autocannon process exited (${signal ?? code})`));
  }

  run(spec: LoadSpec): Promise<LoadResult> {
    if (this.#exit) return Promise.reject(new Error(this.#exit));
    return new Promise((resolve, reject) => {
      const onExit = () => reject(new Error(this.#exit ?? 'the autocannon process exited'));
      this.#child.once('exit', onExit);
      this.#child.once('message', (m: { result?: LoadResult; error?: string }) => {
        this.#child.off('exit', onExit);
        if (m.result) resolve(m.result);
        else reject(new Error(`autocannon: ${m.error}`));
      });
      this.#child.send(spec);
    });
  }

  close(): void {
    if (this.#child.connected) this.#child.disconnect();
  }
}
