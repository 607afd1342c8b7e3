import { PassThrough } from 'node:stream';
import { main } from '../../../src/cli/main.ts';

/** Runs the CLI in-process, returning its exit status and what it wrote. */
export async function run(...argv: string[]) {
  const out = new PassThrough();
  const err = new PassThrough();
  let stdout = '';
  let stderr = '';
  out.on('data', (d) => (stdout += d));
  err.on('data', (d) => (stderr += d));
  const code = await main(argv, { stdout: out, stderr: err, stdin: new PassThrough() });
  return { code, stdout, stderr };
}
