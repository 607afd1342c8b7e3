import { describe, expect, it } from 'vitest';
import { PassThrough } from 'node:stream';
import { main } from '../../src/cli/main.ts';

function capture() {
  const out = new PassThrough();
  const err = new PassThrough();
  let stdout = '';
  let stderr = '';
  out.on('data', (d) => (stdout += d));
  err.on('data', (d) => (stderr += d));
  return { io: { stdout: out, stderr: err, stdin: new PassThrough() }, text: () => ({ stdout, stderr }) };
}

describe('meshlet CLI', () => {
  it('prints every command on --help and exits 0', async () => {
    const c = capture();
    expect(await main(['--help'], c.io)).toBe(0);
    for (const name of ['sidecar', 'identity', 'injector', 'inject', 'ca', 'policy', 'connections', 'demo']) {
      expect(c.text().stdout).toContain(`  ${name}`);
    }
  });

  it('refuses an unknown command with exit 2 and names it', async () => {
    const c = capture();
    expect(await main(['frobnicate'], c.io)).toBe(2);
    expect(c.text().stderr).toContain('unknown command "frobnicate"');
  });

  it('refuses an unknown flag with exit 2 and names the flag', async () => {
    const c = capture();
    expect(await main(['demo', '--bogus'], c.io)).toBe(2);
    expect(c.text().stderr).toContain('unknown flag --bogus');
  });
});
