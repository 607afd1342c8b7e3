import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parsePolicy } from '../../../src/data-plane/policy/parse.ts';
import { run } from '../cli/run.ts';

/**
 * Issue 16 item 1 — docs/policy.md's client-side examples are contracts: the "Clients" example
 * policy is valid as written, and the both-directions `policy explain` console example prints
 * exactly what the command prints when given that policy (web.yaml) and the example of "The
 * language" (shop.yaml).
 */
const docs = readFileSync(join(import.meta.dirname, '../../../docs/policy.md'), 'utf8');
const dir = mkdtempSync(join(tmpdir(), 'meshlet-clients-docs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The first ```yaml block after `heading`. */
function yamlAfter(heading: string): string {
  const at = docs.indexOf(heading);
  expect(at, heading).toBeGreaterThan(-1);
  const start = docs.indexOf('```yaml\n', at) + '```yaml\n'.length;
  return docs.slice(start, docs.indexOf('```', start));
}

describe('docs/policy.md, the client side', () => {
  it('the Clients example is a valid policy, without warnings', () => {
    const r = parsePolicy(yamlAfter('## Clients'), 'clients-example.yaml');
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    expect(r.warnings).toEqual([]);
    expect(r.policy.spec.clients![0]!.destinations.map((d) => d.name)).toEqual(['orders', 'shop', 'payments', 'stripe', 'warehouse-db']);
  });

  it('the both-directions explain example prints what the command prints', async () => {
    const web = join(dir, 'web.yaml');
    const shop = join(dir, 'shop.yaml');
    writeFileSync(web, yamlAfter('## Clients'));
    writeFileSync(shop, yamlAfter('## The language'));
    const at = docs.indexOf('**Both directions');
    const block = docs.slice(docs.indexOf('```console\n', at) + '```console\n'.length, docs.indexOf('```\n', docs.indexOf('```console\n', at) + 11));
    const [command, ...output] = block.replace(/ \\\n\s+/g, ' ').split('\n');
    expect(command).toMatch(/^\$ meshlet policy explain web\.yaml shop\.yaml /);
    const args = command!.slice('$ meshlet '.length).split(' ').map((a) => (a === 'web.yaml' ? web : a === 'shop.yaml' ? shop : a));
    const r = await run(...args);
    expect(r.code).toBe(0);
    expect(r.stdout.replaceAll(web, 'web.yaml').replaceAll(shop, 'shop.yaml')).toBe(output.join('\n'));
  });
});
