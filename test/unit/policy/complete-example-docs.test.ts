// docs/policy.md "A complete example: both directions" is a contract (issue 16: "one complete
// example with both directions, its explain output and its generated NetworkPolicy"): every
// console block there is what the command prints when run on the page's two policies, byte
// for byte. UPDATE_POLICY_DOCS=1 rewrites the output blocks from the commands (then READ the
// diff: the page explains them).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetworkPolicy as NetworkPolicyModel } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { parsePolicy } from '../../../src/data-plane/policy/parse.ts';
import { run } from '../cli/run.ts';

const DOC = join(import.meta.dirname, '../../../docs/policy.md');
const dir = mkdtempSync(join(tmpdir(), 'meshlet-complete-example-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The body of the fenced block right after `<!-- marker -->`, and where it is. */
function block(text: string, marker: string): { body: string; start: number; end: number } {
  const m = new RegExp(`<!-- ${marker} -->\\n\`\`\`[a-z]*\\n([\\s\\S]*?)\`\`\`\\n`).exec(text);
  if (!m) throw new Error(`docs/policy.md has no block after <!-- ${marker} -->`);
  const start = m.index + m[0].indexOf('\n', m[0].indexOf('```')) + 1;
  return { body: m[1]!, start, end: start + m[1]!.length };
}

const FROM_FRONTEND = 'spiffe://cluster.local/ns/web/sa/frontend';
const TO_ORDERS = 'spiffe://cluster.local/ns/shop/sa/orders';

/** Each console block: the command as the page shows it (continuation lines joined by the reader). */
const COMMANDS: Array<{ marker: string; argv: string[]; shown: string; stream: 'stdout' | 'stderr' }> = [
  {
    marker: 'complete-example-explain-allow',
    argv: ['policy', 'explain', 'web.yaml', 'shop.yaml', '--from', FROM_FRONTEND, '--to', TO_ORDERS, '--to-port', '80', '--port', '8080', '--method', 'GET', '--path', '/orders'],
    shown: `$ meshlet policy explain web.yaml shop.yaml --from ${FROM_FRONTEND} \\\n    --to ${TO_ORDERS} --to-port 80 --port 8080 --method GET --path /orders\n`,
    stream: 'stdout',
  },
  {
    marker: 'complete-example-explain-admin',
    argv: ['policy', 'explain', 'web.yaml', 'shop.yaml', '--from', FROM_FRONTEND, '--to', TO_ORDERS, '--to-port', '80', '--port', '8080', '--method', 'GET', '--path', '/admin/users'],
    shown: `$ meshlet policy explain web.yaml shop.yaml --from ${FROM_FRONTEND} \\\n    --to ${TO_ORDERS} --to-port 80 --port 8080 --method GET --path /admin/users\n`,
    stream: 'stdout',
  },
  {
    marker: 'complete-example-explain-reverse',
    argv: ['policy', 'explain', 'web.yaml', 'shop.yaml', '--from', TO_ORDERS, '--to', FROM_FRONTEND, '--port', '8080', '--method', 'GET', '--path', '/'],
    shown: `$ meshlet policy explain web.yaml shop.yaml --from ${TO_ORDERS} \\\n    --to ${FROM_FRONTEND} --port 8080 --method GET --path /\n`,
    stream: 'stdout',
  },
  { marker: 'complete-example-netpol-stderr', argv: ['policy', 'netpol', 'web.yaml', 'shop.yaml'], shown: '$ meshlet policy netpol web.yaml shop.yaml > netpol.yaml\n', stream: 'stderr' },
];

async function runOnPage(page: string, argv: string[]) {
  const files: Record<string, string> = { 'web.yaml': join(dir, 'web.yaml'), 'shop.yaml': join(dir, 'shop.yaml') };
  writeFileSync(files['web.yaml']!, block(page, 'complete-example-web').body);
  writeFileSync(files['shop.yaml']!, block(page, 'complete-example-shop').body);
  const r = await run(...argv.map((a) => files[a] ?? a));
  const back = (s: string) => s.replaceAll(files['web.yaml']!, 'web.yaml').replaceAll(files['shop.yaml']!, 'shop.yaml');
  return { code: r.code, stdout: back(r.stdout), stderr: back(r.stderr) };
}

describe('docs/policy.md, "A complete example: both directions"', () => {
  it('the two policies are valid as written, without warnings', () => {
    const page = readFileSync(DOC, 'utf8');
    for (const marker of ['complete-example-web', 'complete-example-shop']) {
      const r = parsePolicy(block(page, marker).body, `${marker}.yaml`);
      if (!r.ok) throw new Error(`${marker}: ${JSON.stringify(r.errors)}`);
      expect(r.warnings, marker).toEqual([]);
    }
  });

  it('every console block and the NetworkPolicy are what the commands print', async () => {
    let page = readFileSync(DOC, 'utf8');
    const expected = new Map<string, string>();
    for (const c of COMMANDS) {
      const r = await runOnPage(page, c.argv);
      expect(r.code, `${c.marker}: ${r.stderr}`).toBe(0);
      expected.set(c.marker, c.shown + r[c.stream]);
      if (c.marker === 'complete-example-netpol-stderr') expected.set('complete-example-netpol', r.stdout);
    }
    if (process.env.UPDATE_POLICY_DOCS === '1') {
      for (const [marker, body] of expected) {
        const b = block(page, marker);
        page = page.slice(0, b.start) + body + page.slice(b.end);
      }
      writeFileSync(DOC, page);
    }
    const now = readFileSync(DOC, 'utf8');
    for (const [marker, body] of expected) expect(block(now, marker).body, marker).toBe(body);
  });

  it('the verdicts are the ones the page states: allowed, refused by the server, refused by the client', async () => {
    const page = readFileSync(DOC, 'utf8');
    const verdict = async (marker: string) => {
      const c = COMMANDS.find((x) => x.marker === marker)!;
      const r = await runOnPage(page, [...c.argv, '--output', 'json']);
      const j = JSON.parse(r.stdout) as { decision: string; client: { decision: string }; server: { decision: string } | null };
      return [j.decision, j.client.decision, j.server?.decision ?? null];
    };
    expect(await verdict('complete-example-explain-allow')).toEqual(['allow', 'allow', 'allow']);
    expect(await verdict('complete-example-explain-admin')).toEqual(['deny', 'allow', 'deny']);
    expect((await verdict('complete-example-explain-reverse')).slice(0, 2)).toEqual(['deny', 'deny']);
  });

  it('the generated NetworkPolicies are valid objects, one per workload, isolating both directions', () => {
    const objects = parseAllDocuments(block(readFileSync(DOC, 'utf8'), 'complete-example-netpol').body).map((d) => d.toJSON() as { metadata: { namespace: string }; spec: { policyTypes: string[] } });
    expect(objects.map((o) => o.metadata.namespace).sort()).toEqual(['shop', 'web']);
    for (const o of objects) {
      expect(() => new NetworkPolicyModel(o as never).validate()).not.toThrow();
      expect(o.spec.policyTypes).toEqual(['Ingress', 'Egress']);
    }
  });
});
