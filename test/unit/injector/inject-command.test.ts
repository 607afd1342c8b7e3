import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { Pod as PodModel } from 'kubernetes-models/v1/Pod';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { ReplicaSet } from 'kubernetes-models/apps/v1/ReplicaSet';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { CronJob } from 'kubernetes-models/batch/v1/CronJob';
import { runCli } from './cli-support.ts';
import { applyJsonPatch, DEFAULT_INJECTION_SETTINGS, injectPod, type Pod } from '../../../src/control-plane/injector/patch/index.ts';
import { INJECTOR_FIXTURES } from './golden-support.ts';

const EVERY_KIND = join(INJECTOR_FIXTURES, 'workloads', 'every-kind.yaml');
const MODELS: Record<string, new (data: never) => { validate(): void }> = { Pod: PodModel, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob };

const run = runCli;

const docs = (text: string) => parseAllDocuments(text).map((d) => d.toJS());

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'meshlet-inject-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('meshlet inject', () => {
  it('injects every workload kind exactly as the webhook patch would, in document order', async () => {
    const input = docs(readFileSync(EVERY_KIND, 'utf8'));
    const { code, stdout, stderr } = await run(['inject', EVERY_KIND]);
    expect(code).toBe(0);
    const output = docs(stdout);
    expect(output.map((d) => `${d.kind}/${d.metadata?.name ?? ''}`)).toEqual(input.map((d) => `${d.kind}/${d.metadata?.name ?? ''}`));

    const templatePath: Record<string, string[]> = { Pod: [], Deployment: ['spec', 'template'], StatefulSet: ['spec', 'template'], DaemonSet: ['spec', 'template'], ReplicaSet: ['spec', 'template'], Job: ['spec', 'template'], CronJob: ['spec', 'jobTemplate', 'spec', 'template'] };
    const at = (o: any, path: string[]) => path.reduce((x, k) => x[k], o);
    for (const [i, before] of input.entries()) {
      const after = output[i];
      const path = templatePath[before.kind];
      if (!path || before.metadata.name === 'opted-out') continue;
      const template = at(before, path) as Pod;
      const result = injectPod(template, before.metadata.namespace ?? 'default', DEFAULT_INJECTION_SETTINGS);
      expect(result.outcome).toBe('injected');
      expect(at(after, path)).toEqual(result.outcome === 'injected' ? applyJsonPatch(template, result.patch) : null);
      expect(() => new MODELS[before.kind]!(after as never).validate(), `${before.kind} schema`).not.toThrow();
    }
    // The Deployment inside the List is injected too; the ConfigMap beside it is not touched.
    const list = output.find((d) => d.kind === 'List');
    expect(list.items[0].spec.template.spec.initContainers.map((c: { name: string }) => c.name)).toEqual(['meshlet-init', 'meshlet-proxy']);
    expect(list.items[1]).toEqual(input.find((d) => d.kind === 'List').items[1]);
    // Other kinds and opted-out workloads pass through unchanged, comments included.
    expect(output.find((d) => d.kind === 'Service')).toEqual(input.find((d) => d.kind === 'Service'));
    expect(stdout).toContain('# Services pass through unchanged (this comment too).');
    expect(output.at(-1)).toEqual(input.at(-1));
    expect(stderr).toContain('meshlet inject: Deployment/opted-out: skipped (annotation meshlet.io/inject=disabled)');
    expect(stderr).toContain('meshlet inject: CronJob/nightly: injected');
  });

  it('is idempotent: injecting its own output prints the same manifests', async () => {
    const once = await run(['inject', EVERY_KIND]);
    const twice = await run(['inject', '-'], once.stdout);
    expect(twice.code).toBe(0);
    expect(docs(twice.stdout)).toEqual(docs(once.stdout));
  });

  it('reads stdin when no file is given, and honours --namespace and --native-sidecar', async () => {
    const pod = 'apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: app, image: i, ports: [{containerPort: 8080}]}]\n';
    const legacy = await run(['inject', '--native-sidecar', 'false'], pod);
    expect(legacy.code).toBe(0);
    expect(docs(legacy.stdout)[0].spec.containers.map((c: { name: string }) => c.name)).toEqual(['meshlet-proxy', 'app']);
    const excluded = await run(['inject', '--namespace', 'kube-system'], pod);
    expect(docs(excluded.stdout)[0]).toEqual(docs(pod)[0]);
    expect(excluded.stderr).toContain('skipped (namespace kube-system is never injected)');
  });

  it('writes the image and trust domain flags into the sidecar', async () => {
    const file = join(dir, 'pod.yaml');
    await writeFile(file, 'apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: app, image: i}]\n');
    const { stdout } = await run(['inject', file, '--image', 'registry.example/meshlet:dev', '--trust-domain', 'prod.example']);
    const proxy = docs(stdout)[0].spec.initContainers[1];
    expect(proxy.image).toBe('registry.example/meshlet:dev');
    expect(proxy.env.find((e: { name: string }) => e.name === 'MESHLET_TRUST_DOMAIN').value).toBe('prod.example');
  });

  it('fails with exit 1 and the webhook refusal when a manifest would be denied, printing nothing', async () => {
    const bad = 'apiVersion: v1\nkind: Pod\nmetadata: {name: p, annotations: {meshlet.io/log-level: loud}}\nspec:\n  containers: [{name: app, image: i}]\n';
    const { code, stdout, stderr } = await run(['inject', '-'], bad);
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toContain('INJECTOR_ANNOTATION_INVALID: annotation meshlet.io/log-level="loud": must be one of');
  });

  it('fails with exit 1 on YAML it cannot parse, and on a missing file', async () => {
    const yaml = await run(['inject', '-'], 'kind: Pod\nspec: [unclosed\n');
    expect(yaml.code).toBe(1);
    expect(yaml.stderr).toContain('INJECT_INPUT_INVALID: document 1:');
    const missing = await run(['inject', join(dir, 'nope.yaml')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('INJECT_INPUT_INVALID: cannot read');
  });

  it('exits 1 on a bad setting value from the environment, 2 on bad usage (a bad flag value included)', async () => {
    // A flag's bad value is a usage error (issue 17); the same value from the environment is configuration.
    expect((await run(['inject', '--native-sidecar', 'sometimes'], '')).code).toBe(2);
    const saved = process.env.MESHLET_INJECTOR_NATIVE_SIDECAR;
    process.env.MESHLET_INJECTOR_NATIVE_SIDECAR = 'sometimes';
    try {
      expect((await run(['inject'], '')).code).toBe(1);
    } finally {
      if (saved === undefined) delete process.env.MESHLET_INJECTOR_NATIVE_SIDECAR;
      else process.env.MESHLET_INJECTOR_NATIVE_SIDECAR = saved;
    }
    expect((await run(['inject', 'a.yaml', 'b.yaml'])).code).toBe(2);
    expect((await run(['inject', '--bogus'])).code).toBe(2);
  });

  it('prints --help with every flag', async () => {
    const { code, stdout } = await run(['inject', '--help']);
    expect(code).toBe(0);
    for (const flag of ['--namespace', '--image', '--native-sidecar', '--trust-domain', '--ca-address', 'MESHLET_INJECTOR_FAILURE_MODE']) expect(stdout).toContain(flag);
  });
});
