import { HarnessError, waitFor, type Pod, type PodProcess } from '../harness/index.ts';
import { APP_UID } from './meshed-pod.ts';

const CALLER = 'test/e2e/apps/http-caller.ts';
const GRPC_CALLER = 'test/e2e/apps/grpc-caller.ts';

/** One request made by http-caller (see test/e2e/apps/http-caller.ts). */
export interface CallResult {
  url: string;
  status: number | null;
  error: string | null;
  meshletError: string | null;
  body: string;
}

export interface LoopSummary {
  ok: number;
  failed: number;
  statuses: Record<string, number>;
  errors: CallResult[];
}

/**
 * Runs the calling app in `pod` under the app's uid (so the pod's iptables send its traffic
 * to the sidecar) and returns one result per URL. The requests go in order on one keep-alive
 * connection, or with `parallel` all at once, each on its own connection; `headers` go with every request.
 */
export async function callFrom(pod: Pod, urls: string[], options: { uid?: number; parallel?: boolean; headers?: Record<string, string> } = {}): Promise<CallResult[]> {
  const headerArgs = Object.entries(options.headers ?? {}).flatMap(([k, v]) => ['-H', `${k}: ${v}`]);
  const r = await pod.execNode(CALLER, [...headerArgs, options.parallel ? 'parallel' : 'once', ...urls], { uid: options.uid ?? APP_UID, label: 'caller' });
  const results = r.stdout.split('\n').filter((l) => l.startsWith('result ')).map((l) => JSON.parse(l.slice(7)) as CallResult);
  if (r.code !== 0 || results.length !== urls.length) throw new HarnessError('E2E_COMMAND_FAILED', `http-caller in ${pod.name} exited ${r.code}: ${r.stderr.trim()} ${r.stdout.trim()}`);
  return results;
}

/** Steady traffic from the app of a pod: requests back to back until finish(). */
export class TrafficLoop {
  readonly #proc: PodProcess;

  private constructor(proc: PodProcess) {
    this.#proc = proc;
  }

  static start(pod: Pod, url: string, options: { uid?: number } = {}): TrafficLoop {
    return new TrafficLoop(pod.spawnNode(CALLER, ['loop', url], { uid: options.uid ?? APP_UID, label: 'traffic-loop' }));
  }

  /** Requests made so far (counted in tens). */
  get progress(): number {
    const all = [...this.#proc.stdout.matchAll(/^progress (\d+)$/gm)];
    return all.length === 0 ? 0 : Number(all[all.length - 1]![1]);
  }

  /** Waits until at least `n` more requests than now have completed. */
  async advance(n: number): Promise<void> {
    const target = this.progress + n;
    await waitFor(`the traffic loop to reach ${target} requests`, () => {
      if (this.#proc.exit) throw new HarnessError('E2E_PROCESS_EXITED', `the traffic loop exited: ${this.#proc.stderr}`);
      return this.progress >= target ? true : undefined;
    }, { timeoutMs: 60_000 });
  }

  /** Stops the loop (EOF on its stdin) and returns what it counted. */
  async finish(): Promise<LoopSummary> {
    this.#proc.endInput();
    const line = await this.#proc.waitForLine(/^summary /, { timeoutMs: 30_000 });
    await this.#proc.exited;
    return JSON.parse(line.slice('summary '.length)) as LoopSummary;
  }
}

/** One unary gRPC call made by grpc-caller (see test/e2e/apps/grpc-caller.ts). */
export interface GrpcCallResult {
  method: string;
  code: number;
  details: string;
  reply: { id: string; app: string; peer: string | null } | null;
}

/** Runs the gRPC client app in `pod` under the app's uid: one unary call per `Method[=id]`, on one channel. */
export async function grpcCallFrom(pod: Pod, target: string, calls: string[], options: { uid?: number } = {}): Promise<GrpcCallResult[]> {
  const r = await pod.execNode(GRPC_CALLER, [target, ...calls], { uid: options.uid ?? APP_UID, label: 'grpc-caller' });
  const results = r.stdout.split('\n').filter((l) => l.startsWith('result ')).map((l) => JSON.parse(l.slice(7)) as GrpcCallResult);
  if (r.code !== 0 || results.length !== calls.length) throw new HarnessError('E2E_COMMAND_FAILED', `grpc-caller in ${pod.name} exited ${r.code}: ${r.stderr.trim()} ${r.stdout.trim()}`);
  return results;
}
