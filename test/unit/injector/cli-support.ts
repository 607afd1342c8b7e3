import { PassThrough } from 'node:stream';
import { main } from '../../../src/cli/main.ts';

/** Runs `meshlet …` in-process with captured output. */
export async function runCli(argv: string[], stdin = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  let stdout = '';
  let stderr = '';
  out.on('data', (d) => (stdout += d));
  err.on('data', (d) => (stderr += d));
  const input = new PassThrough();
  input.end(stdin);
  const code = await main(argv, { stdout: out, stderr: err, stdin: input });
  return { code, stdout, stderr };
}
