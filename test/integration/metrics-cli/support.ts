import { run } from '../../unit/cli/run.ts';

/** Runs `meshlet …` in-process and returns its exit status and output. */
export async function meshlet(...argv: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  const { code: status, stdout, stderr } = await run(...argv);
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
