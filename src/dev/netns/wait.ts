import { setTimeout as sleep } from 'node:timers/promises';
import { HarnessError } from './errors.ts';

/**
 * Polls `probe` until it returns a value other than undefined. Tests wait for conditions,
 * never for fixed times: the deadline is generous (a loaded 2-core CI machine), the poll
 * interval short, so a fast machine is not slowed down.
 */
export async function waitFor<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, options: { timeoutMs?: number; intervalMs?: number } = {}): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 15_000);
  const interval = options.intervalMs ?? 20;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new HarnessError('E2E_TIMEOUT', `timed out after ${options.timeoutMs ?? 15_000} ms waiting for ${what}`);
    await sleep(interval);
  }
}
