import { PassThrough } from 'node:stream';
import { main } from '../../../src/cli/main.ts';

/** Runs `meshlet …` in-process and returns its exit status and output. */
export async function meshlet(...argv: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  let stdout = '';
  let stderr = '';
  out.on('data', (d) => (stdout += d));
  err.on('data', (d) => (stderr += d));
  const status = await main(argv, { stdout: out, stderr: err, stdin: new PassThrough() });
  return { status, stdout, stderr };
}

export async function waitFor(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Splits an aligned table row into its cells (columns are separated by two or more spaces). */
export function cells(line: string): string[] {
  return line.trim().split(/ {2,}/);
}
