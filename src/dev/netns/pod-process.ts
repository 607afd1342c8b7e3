import type { ChildProcess } from 'node:child_process';
import { readFile, readlink, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { HarnessError } from './errors.ts';
import { parseListeningPorts } from './listening-ports.ts';
import { waitFor } from './wait.ts';

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

// A sidecar under steady traffic logs a lot; keep the tail, which is what a failing test needs.
const MAX_CAPTURE = 4 * 1024 * 1024;

/**
 * A process running inside a pod. `ip netns exec` and `setpriv` both exec() their command,
 * so `pid` is the process itself: signals reach it directly and /proc/<pid> describes it.
 */
export class PodProcess {
  readonly label: string;
  readonly pid: number;
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<ProcessExit>;
  #exit: ProcessExit | undefined;
  #stdout = '';
  #stderr = '';
  readonly #child: ChildProcess;
  readonly #netnsPath: string;
  #netnsLink: string | undefined;

  /** `netnsPath`: /run/netns/<netns>, the namespace the process must be in before its sockets count. */
  constructor(label: string, child: ChildProcess, netnsPath: string) {
    if (child.pid === undefined) throw new HarnessError('E2E_PROCESS_EXITED', `${label} did not start`);
    this.label = label;
    this.pid = child.pid;
    this.#child = child;
    this.#netnsPath = netnsPath;
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (this.#stdout = capped(this.#stdout + d)));
    // EPIPE when the process exits without reading its input: its exit status tells the story.
    child.stdin?.on('error', () => {});
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (this.#stderr = capped(this.#stderr + d)));
    this.exited = new Promise((resolve) => {
      child.on('close', (code, signal) => {
        this.#exit = { code, signal };
        resolve(this.#exit);
      });
    });
  }

  get stdout(): string {
    return this.#stdout;
  }

  get stderr(): string {
    return this.#stderr;
  }

  /** The exit status, or undefined while it runs. */
  get exit(): ProcessExit | undefined {
    return this.#exit;
  }

  /** Writes to the process's stdin. */
  write(data: string | Buffer): void {
    this.#child.stdin?.write(data);
  }

  /** Closes the process's stdin (EOF). */
  endInput(): void {
    this.#child.stdin?.end();
  }

  /** Waits for a line of stdout or stderr matching `pattern`; returns that line. */
  async waitForLine(pattern: RegExp | string, options: { timeoutMs?: number } = {}): Promise<string> {
    const matches = typeof pattern === 'string' ? (l: string) => l.includes(pattern) : (l: string) => pattern.test(l);
    return waitFor(`${this.label} to log ${String(pattern)}`, () => {
      const line = [...this.#stdout.split('\n'), ...this.#stderr.split('\n')].find(matches);
      if (line !== undefined) return line;
      this.#failIfExited(`logging ${String(pattern)}`);
      return undefined;
    }, options);
  }

  /** Waits until a TCP port is listening in this process's network namespace (any address). */
  async waitForPort(port: number, options: { timeoutMs?: number } = {}): Promise<void> {
    await waitFor(`${this.label} to listen on port ${port}`, async () => {
      this.#failIfExited(`listening on port ${port}`);
      // Right after spawn the pid is still `ip` in the root namespace, whose listeners
      // (another test's server on the same port) must not count as the pod's.
      if (!(await this.#inPodNetns())) return undefined;
      const tables = await Promise.all(['tcp', 'tcp6'].map((t) => readFile(`/proc/${this.pid}/net/${t}`, 'utf8').catch(() => '')));
      return tables.some((t) => parseListeningPorts(t).has(port)) ? true : undefined;
    }, options);
  }

  /** SIGTERM, then SIGKILL if it has not exited after `graceMs`. Resolves with the exit status. */
  async stop(options: { graceMs?: number } = {}): Promise<ProcessExit> {
    if (this.#exit) return this.#exit;
    this.#signal('SIGTERM');
    const exited = await Promise.race([this.exited, sleep(options.graceMs ?? 5_000).then(() => undefined)]);
    if (exited) return exited;
    this.#signal('SIGKILL');
    return this.exited;
  }

  /** Sends a signal (e.g. SIGHUP, or SIGTERM to test graceful shutdown without waiting). */
  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    this.#signal(signal);
  }

  #signal(signal: NodeJS.Signals): void {
    try {
      process.kill(this.pid, signal);
    } catch {
      // exited meanwhile
    }
  }

  async #inPodNetns(): Promise<boolean> {
    this.#netnsLink ??= `net:[${(await stat(this.#netnsPath)).ino}]`;
    return (await readlink(`/proc/${this.pid}/ns/net`).catch(() => '')) === this.#netnsLink;
  }

  #failIfExited(waitingFor: string): void {
    if (!this.#exit) return;
    const status = this.#exit.signal ?? `code ${this.#exit.code}`;
    throw new HarnessError('E2E_PROCESS_EXITED', `${this.label} exited (${status}) before ${waitingFor}; stderr: ${tail(this.#stderr) || '(empty)'}; stdout: ${tail(this.#stdout) || '(empty)'}`);
  }
}

function capped(text: string): string {
  return text.length > MAX_CAPTURE ? text.slice(text.length - MAX_CAPTURE / 2) : text;
}

function tail(text: string): string {
  return text.trim().split('\n').slice(-10).join('\n');
}
