// docs/network-policy.md "Example" is a contract: the command run on the page's policy prints
// exactly the page's output and warnings. UPDATE_NETPOL_DOCS=1 rewrites the two blocks (then
// READ the diff, as with the injector's golden files).
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetworkPolicy as NetworkPolicyModel } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { runCli } from '../injector/cli-support.ts';
import { docBlock, NETPOL_DOC } from './support.ts';

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'meshlet-netpol-docs-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('docs/network-policy.md, "Example"', () => {
  it('`meshlet policy netpol policy.yaml` prints the documented output and warnings, byte for byte', async () => {
    const page = readFileSync(NETPOL_DOC, 'utf8');
    const policyText = docBlock(page, 'netpol-example-policy').body;
    const file = join(tmp, 'policy.yaml');
    await writeFile(file, policyText);
    const r = await runCli(['policy', 'netpol', file]);
    expect(r.code, r.stderr).toBe(0);
    // The page runs it as `meshlet policy netpol policy.yaml`.
    const stdout = r.stdout.replaceAll(file, 'policy.yaml');
    const stderr = r.stderr.replaceAll(file, 'policy.yaml');
    if (process.env.UPDATE_NETPOL_DOCS === '1') {
      let updated = page;
      for (const [marker, body] of [['netpol-example-stderr', stderr], ['netpol-example-output', stdout]] as const) {
        const b = docBlock(updated, marker);
        updated = updated.slice(0, b.start) + body + updated.slice(b.end);
      }
      writeFileSync(NETPOL_DOC, updated);
    }
    const now = readFileSync(NETPOL_DOC, 'utf8');
    expect(docBlock(now, 'netpol-example-output').body).toBe(stdout);
    expect(docBlock(now, 'netpol-example-stderr').body).toBe(stderr);
    for (const d of parseAllDocuments(stdout)) expect(() => new NetworkPolicyModel(d.toJSON()).validate()).not.toThrow();
  });
});
