// Issue 17: the demo's message for a broken policy edit must give the line and column the
// parser gives, as `meshlet policy check` does; a policy file that is gone for a moment (an
// editor saving by rename) is not a "refused edit" with no reason.
import { spawn } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { formatPolicyError, parsePolicy } from '../../../src/data-plane/policy/parse.ts';
import { policyEventLine, policyEventOf } from '../../../src/dev/demo/demo-output.ts';
import type { CommandIo } from '../../../src/cli/command.ts';

const BIN = fileURLToPath(new URL('../../../bin/meshlet.js', import.meta.url));

function startDemo(args: string[]) {
  const child = spawn(process.execPath, [BIN, 'demo', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, out: () => out, err: () => err };
}

async function until(what: string, check: () => boolean, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The lines the demo prints for a refused edit of `file` to `text`: each error as policy check prints it. */
function expectedRefusal(text: string, file: string): string[] {
  const parsed = parsePolicy(text, file);
  if (parsed.ok) throw new Error('the edit was meant to be invalid');
  return ['--- policy edit REFUSED, the last good policy stays:', ...parsed.errors.map((e) => `      ${formatPolicyError(e)}`)];
}

describe('meshlet demo: a broken policy edit', () => {
  it('is reported with FILE:LINE:COL for every error; a missing file is said to be missing; a fix reloads', async () => {
    const demo = startDemo(['--interval', '300ms']);
    try {
      await until('the first round', () => demo.out().includes('ALLOW') || demo.child.exitCode !== null);
      const file = /Policy file \(edit it while this runs; it reloads live\):\n {2}(\S+)/.exec(demo.out())?.[1];
      expect(file, demo.out() + demo.err()).toBeDefined();
      const good = await readFile(file!, 'utf8');

      // A YAML syntax error: an unclosed flow sequence.
      const yamlError = good.replace('methods: [GET]', 'methods: [GET');
      expect(yamlError).not.toBe(good);
      await writeFile(file!, yamlError);
      const syntax = expectedRefusal(yamlError, file!);
      await until('the refusal of the YAML error', () => demo.out().includes(syntax.join('\n')));
      expect(syntax[1]).toMatch(new RegExp(`^ {6}${file!.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:\\d+:\\d+: error POLICY_YAML: `));

      // A schema error: located at the offending value.
      const schemaError = 'apiVersion: policy.meshlet.io/v1alpha1\nkind: AuthorizationPolicy\nspec: { servers: 7 }\n';
      await writeFile(file!, schemaError);
      const schema = expectedRefusal(schemaError, file!);
      await until('the refusal of the schema error', () => demo.out().includes(schema.join('\n')));
      expect(schema[1]).toContain(`${file}:3:`);

      // Gone for a moment, as when an editor saves by rename: said so, not "REFUSED" with no reason.
      await rm(file!);
      await until('the missing-file notice', () => demo.out().includes('--- policy file missing'));
      expect(demo.out()).not.toMatch(/REFUSED, the last good policy stays\n/);

      await writeFile(file!, good.replace('methods: [GET]', 'methods: [GET, DELETE]'));
      await until('the reload', () => demo.out().includes('--- policy reloaded: the next round uses it'));
    } finally {
      demo.child.kill('SIGINT');
    }
    expect(await demo.exited, demo.err()).toBe(0);
  }, 120_000);
});

describe('policyEventOf / policyEventLine', () => {
  const io = { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin } as unknown as CommandIo;
  const plain = { ...io, stdout: { isTTY: false } } as unknown as CommandIo;

  it('reads the sidecar\'s log line: result and every error', () => {
    const raw = JSON.stringify({ level: 'warn', event: 'policy_rejected', result: 'invalid', errors: ['/p/policy.yaml:4:7: error POLICY_SCHEMA at spec: x'] });
    const event = policyEventOf(raw);
    expect(event).toEqual({ event: 'policy_rejected', result: 'invalid', errors: ['/p/policy.yaml:4:7: error POLICY_SCHEMA at spec: x'] });
    expect(policyEventLine(plain, event!)).toBe('--- policy edit REFUSED, the last good policy stays:\n      /p/policy.yaml:4:7: error POLICY_SCHEMA at spec: x\n');
    expect(policyEventOf(JSON.stringify({ event: 'policy_reloaded' }))).toEqual({ event: 'policy_reloaded' });
    expect(policyEventOf('{"event":"other"}')).toBeUndefined();
  });

  it('deleted and unreadable say what happened', () => {
    expect(policyEventLine(plain, { event: 'policy_rejected', result: 'deleted', errors: [] })).toContain('policy file missing');
    const unreadable = { event: 'policy_rejected' as const, result: 'unreadable', errors: ['/p/policy.yaml: error POLICY_UNREADABLE: cannot read /p/policy.yaml: EACCES'] };
    expect(policyEventLine(plain, unreadable)).toBe('--- policy file UNREADABLE, the last good policy stays:\n      /p/policy.yaml: error POLICY_UNREADABLE: cannot read /p/policy.yaml: EACCES\n');
  });
});
