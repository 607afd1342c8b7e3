import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import * as net from 'node:net';
import { BenchError } from './bench-error.ts';

/**
 * A process of the bench topology, with the tail of its stderr kept so a failure to start
 * says why, and an exit watcher so waiting for it never outlives it.
 */
export interface BenchProcess {
  name: string;
  child: ChildProcess;
  pid: number;
  stderrTail(): string;
  exited: Promise<number | null>;
}

export function startProcess(name: string, command: string, args: string[], options: SpawnOptions = {}): BenchProcess {
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'], ...options });
  let tail = '';
  child.stderr?.on('data', (c: Buffer) => {
    tail = (tail + c.toString()).slice(-4000);
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  if (child.pid === undefined) throw new BenchError('BENCH_PROCESS_EXITED', `${name}: could not start ${command}`);
  return { name, child, pid: child.pid, stderrTail: () => tail.trim(), exited };
}

export async function stopProcess(p: BenchProcess): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill('SIGTERM');
  const killed = setTimeout(() => p.child.kill('SIGKILL'), 5000);
  await p.exited;
  clearTimeout(killed);
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Polls `check` until it holds; fails fast with the process's stderr when the process dies first. */
export async function waitUntil(p: BenchProcess, what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exit: number | null | undefined;
  void p.exited.then((code) => (exit = code));
  for (;;) {
    if (exit !== undefined) throw new BenchError('BENCH_PROCESS_EXITED', `${p.name} exited (status ${exit}) before ${what}: ${p.stderrTail() || '(no stderr)'}`);
    if (await check()) return;
    if (Date.now() > deadline) throw new BenchError('BENCH_NOT_READY', `${p.name}: no ${what} after ${timeoutMs / 1000} s; stderr: ${p.stderrTail() || '(none)'}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function waitForPort(p: BenchProcess, port: number, timeoutMs?: number): Promise<void> {
  return waitUntil(p, `a listener on port ${port}`, () => canConnect(port), timeoutMs);
}
