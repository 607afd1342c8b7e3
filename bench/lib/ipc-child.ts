import { type ChildProcess, spawn } from 'node:child_process';
import { DEFAULT_PROXY_RESOURCES } from '../../src/control-plane/injector/patch/containers.ts';
import { memoryQuantityBytes, proxyRuntime } from '../../src/control-plane/injector/patch/heap-settings.ts';

type Waiter = { resolve: (v: Record<string, unknown>) => void; reject: (e: Error) => void };

/**
 * One side of a two-process micro bench (each side its own process, so its CPU is its own),
 * started with the Node flags and environment the injector gives the sidecar. Talks over IPC:
 * the child answers request `id` with `{ id, ...result }` or `{ id, error }`, and announces
 * itself with id 0 (`ready`). See replyToRequests() for the child's half.
 */
export class IpcChild {
  readonly proc: ChildProcess;
  readonly #waiting = new Map<number, Waiter>();
  #next = 1;
  readonly ready: Promise<Record<string, unknown>>;

  constructor(script: string, mode: string, args: string[], extraNodeFlags: string[] = []) {
    const runtime = proxyRuntime(memoryQuantityBytes(DEFAULT_PROXY_RESOURCES.memoryLimit)!);
    this.proc = spawn(process.execPath, [...runtime.nodeFlags, ...extraNodeFlags, script, mode, ...args], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, ...runtime.env },
    });
    this.ready = new Promise((resolve, reject) => {
      this.#waiting.set(0, { resolve, reject });
    });
    this.proc.on('message', (m: { id: number; error?: string }) => {
      const w = this.#waiting.get(m.id);
      if (w === undefined) return;
      this.#waiting.delete(m.id);
      if (m.error !== undefined) w.reject(new Error(`${mode} process: ${m.error}`));
      else w.resolve(m as Record<string, unknown>);
    });
    this.proc.once('exit', (code, signal) => {
      for (const w of this.#waiting.values()) w.reject(new Error(`${mode} process exited (${signal ?? code})`));
      this.#waiting.clear();
    });
  }

  ask<T>(cmd: string, args: object = {}): Promise<T> {
    return new Promise((resolve, reject) => {
      const id = this.#next++;
      this.#waiting.set(id, { resolve: resolve as (v: Record<string, unknown>) => void, reject });
      this.proc.send({ id, cmd, ...args });
    });
  }

  stop(): void {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGTERM');
  }
}
