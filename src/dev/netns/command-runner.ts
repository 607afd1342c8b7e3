import { spawn, spawnSync } from 'node:child_process';
import { HarnessError } from './errors.ts';

export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a short-lived command (`ip`, `iptables-restore`, ...) to completion, optionally feeding stdin. */
export function runCommand(cmd: string, args: readonly string[], options: { input?: string } = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (err) => reject(new HarnessError('E2E_COMMAND_FAILED', `${cmd} could not start: ${err.message}`, { cause: err })));
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    // EPIPE when the command dies before reading stdin: 'close' reports the real failure.
    child.stdin.on('error', () => {});
    child.stdin.end(options.input ?? '');
  });
}

/** runCommand, but a non-zero exit is a HarnessError naming the command and its stderr. */
export async function mustRun(cmd: string, args: readonly string[], options: { input?: string } = {}): Promise<string> {
  const r = await runCommand(cmd, args, options);
  if (r.code !== 0) throw commandFailed(cmd, args, r.signal ?? r.code, r.stderr);
  return r.stdout;
}

/**
 * Synchronous variant for the two places that cannot await: vitest's `describe.skipIf`
 * (decided at collection time) and the process 'exit' hook that tears down after a crash.
 */
export function runCommandSync(cmd: string, args: readonly string[], options: { input?: string } = {}): CommandResult {
  const r = spawnSync(cmd, args, { input: options.input ?? '', encoding: 'utf8' });
  if (r.error) return { code: null, signal: null, stdout: '', stderr: r.error.message };
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

export function commandFailed(cmd: string, args: readonly string[], status: number | string | null, stderr: string): HarnessError {
  return new HarnessError('E2E_COMMAND_FAILED', `\`${[cmd, ...args].join(' ')}\` exited with ${status}: ${stderr.trim() || '(no output)'}`);
}
