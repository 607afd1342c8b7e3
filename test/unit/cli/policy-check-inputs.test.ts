// Issue 17: `meshlet policy check` finds the policies among other objects (documents, ConfigMaps,
// List items), skips the rest and says so, searches directories, and calls an input without
// any policy an error; a plain policy file is checked exactly as before.
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli as run } from '../injector/cli-support.ts';
import { parsePolicy, formatPolicyError } from '../../../src/data-plane/policy/parse.ts';

const FIXTURES = join(import.meta.dirname, '../../fixtures/policy');
const fixture = (name: string) => readFileSync(join(FIXTURES, name), 'utf8');
const VALID = fixture('valid-orders.yaml');

const indent = (text: string, n: number) => text.trimEnd().split('\n').map((l) => ' '.repeat(n) + l).join('\n');
const configMap = (name: string, policy: string, opts: { labelled?: boolean; namespace?: string; key?: string } = {}) =>
  `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\n  namespace: ${opts.namespace ?? 'shop'}\n${opts.labelled === false ? '' : '  labels:\n    meshlet.io/policy: "true"\n'}data:\n  ${opts.key ?? 'policy.yaml'}: |\n${indent(policy, 4)}\n`;
const deployment = (name: string) => `apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ${name}\n  namespace: shop\nspec:\n  template:\n    spec:\n      containers: [{name: app, image: app}]\n`;
const service = (name: string) => `apiVersion: v1\nkind: Service\nmetadata: {name: ${name}, namespace: shop}\nspec:\n  ports: [{port: 80}]\n`;

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'meshlet-policy-check-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('a plain policy file is checked exactly as before', () => {
  it('errors with FILE:LINE:COL as parsePolicy gives them, one INVALID line, no summary', async () => {
    const text = fixture('path-not-normalized.yaml');
    const r = await run(['policy', 'check', '-'], text);
    const expected = parsePolicy(text, '<stdin>');
    expect(expected.ok).toBe(false);
    expect(r.stderr).toBe(expected.ok ? '' : expected.errors.map((e) => formatPolicyError(e) + '\n').join(''));
    expect(r.stdout).toBe('<stdin>: INVALID, 2 errors\n');
    expect(r.code).toBe(1);
  });

  it('a YAML syntax error, an empty input, a document without apiVersion: the same codes and places as ever', async () => {
    const syntax = fixture('yaml-syntax-error.yaml');
    const r = await run(['policy', 'check', '-'], syntax);
    const expected = parsePolicy(syntax, '<stdin>');
    expect(r.stderr).toBe(expected.ok ? '' : expected.errors.map((e) => formatPolicyError(e) + '\n').join(''));
    expect((await run(['policy', 'check', '-'], '')).stderr).toBe('<stdin>:1:1: error POLICY_EMPTY: the document is empty\n');
    // No apiVersion nor kind: still a policy, so a policy missing its header gets its errors.
    const headlessText = 'spec:\n  servers: []\n';
    const headless = await run(['policy', 'check', '-'], headlessText);
    const headlessExpected = parsePolicy(headlessText, '<stdin>');
    expect(headless.stderr).toContain('error POLICY_SCHEMA');
    expect(headless.stderr).toBe(headlessExpected.ok ? '' : headlessExpected.errors.map((e) => formatPolicyError(e) + '\n').join(''));
    expect(headless.stdout).toBe(`<stdin>: INVALID, ${headlessExpected.ok ? 0 : headlessExpected.errors.length} errors\n`);
  });

  it('a valid file: one line, exit 0', async () => {
    const r = await run(['policy', 'check', '-'], VALID);
    expect([r.code, r.stdout, r.stderr]).toEqual([0, '<stdin>: valid\n', '']);
  });
});

describe('policies among other objects', () => {
  it('checks policy documents and policy ConfigMaps, skips the rest and counts them by kind', async () => {
    const stream = [deployment('orders'), configMap('orders-policy', VALID), service('orders'), deployment('web'), VALID].join('---\n');
    const r = await run(['policy', 'check', '-'], stream);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(
      '<stdin> (document 2): ConfigMap shop/orders-policy data[policy.yaml]: valid\n' +
        '<stdin> (document 5): valid\n' +
        'checked 2 policies (1 ConfigMap key, 1 document); skipped 3 objects that are not policies: Deployment×2, Service×1\n',
    );
    expect(r.code).toBe(0);
  });

  it('an invalid policy among them: located in the stream, exit 1', async () => {
    const stream = [deployment('orders'), fixture('invalid-spiffe-id.yaml')].join('---\n');
    const r = await run(['policy', 'check', '-'], stream);
    expect(r.code).toBe(1);
    const [line] = r.stderr.split('\n');
    const [, at] = /^<stdin>:(\d+):\d+: error POLICY_BAD_SPIFFE_ID/.exec(line!) ?? [];
    expect(stream.split('\n')[Number(at) - 1]).toMatch(/spiffe/);
  });

  it('ConfigMaps: by the label, by the name meshlet-policy, or by a key that holds a policy (warned: /validate never sees it); others skipped', async () => {
    const stream = [
      configMap('meshlet-policy', VALID, { labelled: false, namespace: 'a' }),
      configMap('orders-policy', VALID, { labelled: false, namespace: 'b', key: 'authz.yml' }),
      'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app-config}\ndata:\n  settings.yaml: "port: 8080"\n',
      'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: labelled-but-empty\n  labels: {meshlet.io/policy: "true"}\ndata:\n  settings.json: "{}"\n',
    ].join('---\n');
    const r = await run(['policy', 'check', '-'], stream);
    expect(r.stdout).toBe(
      '<stdin> (document 1): ConfigMap a/meshlet-policy data[policy.yaml]: valid (1 warning)\n' +
        '<stdin> (document 2): ConfigMap b/orders-policy data[authz.yml]: valid (1 warning)\n' +
        '<stdin> (document 4): ConfigMap labelled-but-empty: INVALID, 1 error\n' +
        'checked 3 policies (2 ConfigMap keys, 1 ConfigMap without a policy key); skipped 1 object that is not a policy: ConfigMap×1\n',
    );
    expect(r.stderr).toContain('warning POLICY_CONFIGMAP_UNLABELLED at metadata.labels: ConfigMap a/meshlet-policy holds a policy but is not labelled meshlet.io/policy: "true"');
    expect(r.stderr).toContain('error POLICY_CONFIGMAP_NO_KEY');
    expect(r.code).toBe(1);
  });

  it('List items are visited; a policy inside a List is located at its line and column', async () => {
    const list = `apiVersion: v1\nkind: List\nitems:\n${indent(`- ${configMap('meshlet-policy', VALID).replace(/\n(?!$)/g, '\n  ')}`, 0)}\n- apiVersion: v1\n  kind: Service\n  metadata: {name: s}\n- apiVersion: policy.meshlet.io/v1alpha1\n  kind: AuthorizationPolicy\n  spec:\n    servers: 2\n`;
    const r = await run(['policy', 'check', '-'], list);
    expect(r.stdout).toContain('<stdin> (item 1): ConfigMap shop/meshlet-policy data[policy.yaml]: valid\n');
    expect(r.stdout).toContain('<stdin> (item 3): INVALID, 1 error\n');
    expect(r.stdout).toContain('skipped 1 object that is not a policy: Service×1');
    const lines = list.split('\n');
    const at = lines.findIndex((l) => l === '    servers: 2') + 1;
    expect(r.stderr).toBe(`<stdin>:${at}:14: error POLICY_SCHEMA at spec.servers: must be an array\n`);
  });

  it('another group\'s AuthorizationPolicy (Istio) is skipped and named with its apiVersion', async () => {
    const stream = ['apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: x}\nspec: {}\n', VALID].join('---\n');
    const r = await run(['policy', 'check', '-'], stream);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('skipped 1 object that is not a policy: AuthorizationPolicy (security.istio.io/v1)×1');
  });

  it('no policy at all is an error: one coded line naming what a policy is, the summary, exit 1', async () => {
    const r = await run(['policy', 'check', '-'], [deployment('a'), service('a')].join('---\n'));
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      '<stdin>: error POLICY_NONE_FOUND: no policy found in <stdin> (2 objects, none of them a policy): a policy is a document with apiVersion policy.meshlet.io/…, or a ConfigMap labelled meshlet.io/policy: "true", named meshlet-policy, or holding one under a *.yaml / *.yml key (docs/policy.md#cli)\n',
    );
    expect(r.stdout).toBe('checked 0 policies; skipped 2 objects that are not policies: Deployment×1, Service×1\n');
    const json = JSON.parse((await run(['policy', 'check', '-', '--output', 'json'], deployment('a'))).stdout);
    expect(json.valid).toBe(false);
    expect(json.policies[0].errors[0].code).toBe('POLICY_NONE_FOUND');
  });

  it('policy explain finds the policy among other objects too', async () => {
    const stream = [deployment('orders'), configMap('meshlet-policy', VALID), service('orders')].join('---\n');
    const r = await run(['policy', 'explain', '-', '--from', 'spiffe://cluster.local/ns/web/sa/frontend', '--port', '8080', '--method', 'GET', '--path', '/orders', '--output', 'json'], stream);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ decision: 'allow', route: 'list-orders' });
    const none = await run(['policy', 'explain', '-', '--from', 'unauthenticated', '--port', '8080'], deployment('orders'));
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('POLICY_NONE_FOUND');
  });
});

describe('directories', () => {
  it('searched recursively in sorted order for *.yaml, *.yml and *.json; dot-names skipped, symlinked files read; other documents skipped', async () => {
    const dir = join(tmp, 'manifests');
    await mkdir(join(dir, 'b', 'nested'), { recursive: true });
    await mkdir(join(dir, '.hidden'), { recursive: true });
    await mkdir(join(dir, 'kubelet', '..2026_01_01'), { recursive: true });
    await writeFile(join(dir, 'b', 'nested', 'z.yml'), VALID);
    await writeFile(join(dir, 'b', 'a.yaml'), [deployment('x'), configMap('orders-policy', VALID)].join('---\n'));
    await writeFile(join(dir, 'a.json'), JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name: 's' } }));
    await writeFile(join(dir, 'dashboard.json'), JSON.stringify({ title: 'not a Kubernetes object' }));
    await writeFile(join(dir, 'notes.txt'), 'not read');
    await writeFile(join(dir, '.hidden', 'broken.yaml'), 'spec: [');
    // A kubelet ConfigMap volume: the key is a symlink into a dot-directory, read once.
    await writeFile(join(dir, 'kubelet', '..2026_01_01', 'policy.yaml'), VALID);
    await symlink('..2026_01_01', join(dir, 'kubelet', '..data'));
    await symlink(join('..data', 'policy.yaml'), join(dir, 'kubelet', 'policy.yaml'));
    const r = await run(['policy', 'check', dir]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(
      `${join(dir, 'b/a.yaml')} (document 2): ConfigMap shop/orders-policy data[policy.yaml]: valid\n` +
        `${join(dir, 'b/nested/z.yml')}: valid\n` +
        `${join(dir, 'kubelet/policy.yaml')}: valid\n` +
        'checked 3 policies (1 ConfigMap key, 2 documents) in 5 files; skipped 3 objects that are not policies: (not a Kubernetes object)×1, Deployment×1, Service×1\n',
    );
    expect(r.code).toBe(0);
  });

  it('a YAML error in a directory is reported (it may have been a policy); a directory without a policy is POLICY_NONE_FOUND', async () => {
    const broken = join(tmp, 'broken');
    await mkdir(broken);
    await writeFile(join(broken, 'x.yaml'), 'spec: [\n');
    const r = await run(['policy', 'check', broken]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/x\.yaml:\d+:\d+: error POLICY_YAML/);
    const empty = join(tmp, 'empty');
    await mkdir(empty);
    await writeFile(join(empty, 'svc.yaml'), service('s'));
    const none = await run(['policy', 'check', empty]);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain(`${empty}: error POLICY_NONE_FOUND: no policy found in ${empty} (1 object, none of them a policy)`);
    expect(none.stdout).toBe('checked 0 policies in 1 file; skipped 1 object that is not a policy: Service×1\n');
  });

  it('a file and a directory together; a missing path is one coded line, exit 1', async () => {
    const file = join(tmp, 'p.yaml');
    await writeFile(file, VALID);
    const r = await run(['policy', 'check', file, join(tmp, 'missing')]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe(`${file}: valid\n${join(tmp, 'missing')}: INVALID, 1 error\n`);
    expect(r.stderr).toBe(`${join(tmp, 'missing')}: error POLICY_FILE_UNREADABLE: cannot read ${join(tmp, 'missing')}: ENOENT\n`);
  });
});
