// Issue 17: `meshlet inject` printed the documents it passes through re-formatted, without
// their comments (license headers), though the docs say they are printed as written. Now a
// document the injector does not change is printed byte for byte, and a changed one keeps its
// comments, flow maps, quoting and layout wherever the injector left the value alone.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { runCli as run } from '../injector/cli-support.ts';
import { layoutOf } from '../../../src/cli/commands/inject.ts';
import { injectManifest } from '../../../src/control-plane/injector/workloads.ts';
import { readInjectionSettings } from '../../../src/control-plane/injector/patch/index.ts';
import { INJECTOR_FIXTURES } from '../injector/golden-support.ts';

const HEADER = `# Copyright 2026 Example Corp.
# SPDX-License-Identifier: Apache-2.0

`;
const SERVICE = `apiVersion: v1
kind: Service   # the front door
metadata: {name: web, labels: {app: web, tier: "front"}}
spec:
  ports: [{port: 80, targetPort: http}]
`;
const DEPLOYMENT = `# The workload: injected.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2 # two replicas
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web}   # pod labels
    spec:
      containers:
      - name: web   # the app
        image: 'registry.example/web:1.0'
        ports: [{name: http, containerPort: 8080}]
        env:
        - {name: GREETING, value: "hello"}
...
`;
const CONFIG_LIST = `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: settings}   # kept
  data: {mode: "fast", retries: '3'}
`;
const OPTED_OUT = `apiVersion: apps/v1
kind: Deployment
metadata: {name: legacy}
spec:
  template:
    metadata:
      annotations: {meshlet.io/inject: disabled}
    spec:
      containers: [{name: legacy, image: legacy:1}]
`;
const INPUT = `${HEADER}${SERVICE}---\n${DEPLOYMENT}---\n${CONFIG_LIST}---\n# trailing comment of the stream\n${OPTED_OUT}`;

const docs = (text: string) => parseAllDocuments(text).map((d) => d.toJS() as unknown);
const settings = readInjectionSettings({});
/** What `meshlet inject` must print, as values: injectManifest per document. */
const injected = (text: string) => docs(text).map((d) => JSON.parse(JSON.stringify(injectManifest(d, 'default', settings).manifest)) as unknown);

describe('meshlet inject prints what it does not change as written', () => {
  it('a stream with nothing to inject comes out byte for byte: license header, flow maps, quotes, comments, ---, ..., a List', async () => {
    const text = `${HEADER}---\n${SERVICE}---\n${CONFIG_LIST}...\n---\n# trailing comment of the stream\n${OPTED_OUT}`;
    const r = await run(['inject', '-'], text);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(text);
  });

  it('around a changed document, every other document and separator is byte for byte', async () => {
    const r = await run(['inject', '-'], INPUT);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('Deployment/web: injected');
    // Everything before the changed document's text, and everything after it, as written.
    expect(r.stdout.startsWith(`${HEADER}${SERVICE}---\n# The workload: injected.\n`)).toBe(true);
    expect(r.stdout.endsWith(`...\n---\n${CONFIG_LIST}---\n# trailing comment of the stream\n${OPTED_OUT}`)).toBe(true);
    expect(docs(r.stdout)).toEqual(injected(INPUT));
  });

  it('a changed document keeps its comments, flow maps, quoting and sequence layout', async () => {
    const r = await run(['inject', '-'], INPUT);
    const out = r.stdout;
    for (const kept of [
      'replicas: 2 # two replicas',
      'selector: {matchLabels: {app: web}}',
      // the pod labels keep their flow style and comment, with the ServiceAccount label added
      'labels: {app: web, meshlet.io/service-account: default} # pod labels',
      "- name: web # the app\n        image: 'registry.example/web:1.0'",
      'ports: [{name: http, containerPort: 8080}]',
      '- {name: GREETING, value: "hello"}',
      // new sequences follow the document's own layout (items not indented under their key)
      '      initContainers:\n      - name: meshlet-init',
    ]) expect(out).toContain(kept);
  });

  it('a List whose Deployment is injected: the List is rewritten, its untouched ConfigMap keeps its comment', async () => {
    const list = `${HEADER}apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: ConfigMap\n    metadata: {name: settings}   # kept\n    data: {mode: "fast"}\n  - ${DEPLOYMENT.replace('...\n', '').replace(/^# .*\n/, '').replace(/\n(?!$)/g, '\n    ')}`;
    const r = await run(['inject', '-'], list);
    expect(r.code).toBe(0);
    expect(docs(r.stdout)).toEqual(injected(list));
    expect(r.stdout.startsWith(HEADER)).toBe(true);
    expect(r.stdout).toContain('metadata: {name: settings} # kept\n    data: {mode: "fast"}');
    // The injected item is the same node, reconciled (matched by kind and name), not re-created.
    expect(r.stdout).toContain('selector: {matchLabels: {app: web}}');
    expect(r.stdout).toContain('- name: web # the app');
  });

  it('injecting its own output changes nothing: byte for byte', async () => {
    const once = await run(['inject', '-'], INPUT);
    const twice = await run(['inject', '-'], once.stdout);
    expect(twice.code).toBe(0);
    expect(twice.stdout).toBe(once.stdout);
  });

  it('a changed document with YAML aliases is printed from its values (correct, comments inside not kept)', async () => {
    const text = `apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: &labels {app: p}}\nspec:\n  containers:\n    - name: app\n      image: i\n      env: [{name: LABELS, value: x}]\n  nodeSelector: *labels\n`;
    const r = await run(['inject', '-'], text);
    expect(r.code).toBe(0);
    expect(docs(r.stdout)).toEqual(injected(text));
  });

  it('every document of the real-world corpus comes out as injectManifest makes it (values), untouched ones byte for byte', async () => {
    const dir = join(INJECTOR_FIXTURES, 'corpus');
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.yaml'))) {
      const text = readFileSync(join(dir, file), 'utf8');
      const r = await run(['inject', join(dir, file)]);
      expect(r.code, `${file}: ${r.stderr}`).toBe(0);
      const want = injected(text);
      expect(docs(r.stdout), file).toEqual(want);
      // The unchanged documents' text is found in the output as written.
      const parsed = parseAllDocuments(text);
      for (const [i, d] of parsed.entries()) {
        if (isDeepStrictEqual(want[i], JSON.parse(JSON.stringify(d.toJS())))) expect(r.stdout.includes(text.slice(d.range[0], d.range[2])), `${file} document ${i + 1}`).toBe(true);
      }
    }
  });
});

describe('layoutOf: the layout a changed document is printed with', () => {
  it('reads indentation, sequence indentation and flow padding from the document', () => {
    expect(layoutOf('a:\n  b:\n  - x\nc: {d: 1}\n')).toEqual({ indent: 2, indentSeq: false, flowCollectionPadding: false });
    expect(layoutOf('a:\n    b:\n        - x\nc: { d: 1 }\n')).toEqual({ indent: 4, indentSeq: true, flowCollectionPadding: true });
    expect(layoutOf('kind: Service\n')).toEqual({ indent: 2, indentSeq: true, flowCollectionPadding: true });
  });
});
