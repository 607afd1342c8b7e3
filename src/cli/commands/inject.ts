import { readFile } from 'node:fs/promises';
import { isDeepStrictEqual } from 'node:util';
import { isMap, isNode, isScalar, isSeq, parseAllDocuments, visit, type Document } from 'yaml';
import type { Command, CommandIo } from '../command.ts';
import { parseFlags, readWithFlags } from '../command.ts';
import { MeshletError, UsageError } from '../../common/errors/meshlet-error.ts';
import { describeEnv } from '../../common/config/env.ts';
import { INJECTION_ENV, readInjectionSettings, type InjectionSettings } from '../../control-plane/injector/patch/index.ts';
import { injectManifest } from '../../control-plane/injector/workloads.ts';

/** Input YAML that cannot be parsed: nothing is printed, so a pipe into kubectl applies nothing. */
export class InjectInputError extends MeshletError {
  constructor(message: string) {
    super('INJECT_INPUT_INVALID', message);
  }
}

const help = `Usage: meshlet inject [FILE|-] [flags]

Injects the meshlet sidecar into Kubernetes manifests offline, exactly as the admission
webhook would, and prints the manifests on stdout (same order, multi-document YAML):

  meshlet inject app.yaml | kubectl apply -f -

Pods and the pod templates of Deployment, StatefulSet, DaemonSet, ReplicaSet,
ReplicationController, Job and CronJob are injected; List items are visited; every other
kind passes through unchanged. A pod template is injected unless it opts out — annotation
meshlet.io/inject: disabled (the webhook's own check) or label meshlet.io/inject: disabled
on the template (the webhook's objectSelector never sends such pods) — the namespace label
the webhook relies on is assumed. Already injected, hostNetwork and excluded-namespace
templates are left as they are. What happened to each template is reported on stderr, with
warnings about what will not work once injected (e.g. a probe that cannot be moved to the
sidecar's admin port).

Reads FILE, or stdin when FILE is - or absent. The output is the input with each document
the injector changed replaced: every other document (other kinds, skipped and opted-out
templates) is printed byte for byte as written, with the comments and the --- / ...
separators around it. A changed document keeps its comments, key order, flow or block style
and quoting wherever the injector left the value alone, and its own indentation, sequence
indentation and flow-collection padding; the space before a trailing comment and blank
lines follow the yaml library. A changed document that uses YAML aliases is printed from its
values (its comments are not kept).

Flags:
  --namespace NS          namespace assumed for manifests without metadata.namespace (default: default)
  --image IMAGE           sidecar image (env ${INJECTION_ENV.image.name}, default ${INJECTION_ENV.image.default})
  --native-sidecar BOOL   true: native sidecar (Kubernetes >= 1.29); false: regular first container
  --trust-domain TD       trust domain written into the sidecar
  --ca-address HOST:PORT  identity service address written into the sidecar

Settings not given as flags come from the environment, as for the webhook:
${describeEnv(Object.values(INJECTION_ENV))}

Exit status: 0 printed; 1 a manifest is refused (the webhook would deny the pod: a bad
annotation, a container that could leave interception such as runAsUser 2020, an annotation
that ${INJECTION_ENV.allowedPodOverrides.name} forbids), with the webhook's message, or the
input is not YAML; 2 bad flags.`;

async function readInput(file: string | undefined, io: CommandIo): Promise<string> {
  if (file !== undefined && file !== '-') {
    try {
      return await readFile(file, 'utf8');
    } catch (err) {
      throw new InjectInputError(`cannot read ${file}: ${(err as Error).message}`);
    }
  }
  const chunks: Buffer[] = [];
  for await (const chunk of io.stdin) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(chunks).toString('utf8');
}

function settingsFrom(values: Record<string, string | boolean | undefined>): InjectionSettings {
  // Flags override the environment; both go through the same validation.
  // A bad flag value is a usage error (exit 2) naming the flag; a bad variable stays exit 1.
  const flagToEnv = { image: INJECTION_ENV.image.name, 'native-sidecar': INJECTION_ENV.nativeSidecar.name, 'trust-domain': INJECTION_ENV.trustDomain.name, 'ca-address': INJECTION_ENV.caAddress.name } as const;
  return readWithFlags(values, flagToEnv, readInjectionSettings);
}

export const commands: Command[] = [
  {
    name: 'inject',
    summary: 'inject the sidecar into manifests offline (same patch as the webhook)',
    help,
    async run(argv, io) {
      const { values, positionals } = parseFlags(
        argv,
        { namespace: { type: 'string' }, image: { type: 'string' }, 'native-sidecar': { type: 'string' }, 'trust-domain': { type: 'string' }, 'ca-address': { type: 'string' } },
        true,
      );
      if (positionals.length > 1) throw new UsageError(`expected at most one FILE, got ${positionals.length}: ${positionals.join(' ')}`);
      const settings = settingsFrom(values);
      const namespace = values.namespace ?? 'default';
      const text = await readInput(positionals[0], io);

      const docs = parseAllDocuments(text);
      if (docs.length === 0) return emit(io, text); // no document: comments or nothing, as written
      // The output is the input with each CHANGED document's text replaced: everything else —
      // untouched documents, separators, comments between documents — is printed byte for byte
      // as written. A document's text runs from the end of the one before it (the comments and
      // directives that lead into it) to the end of its own range.
      let out = '';
      let written = 0;
      for (const [i, doc] of docs.entries()) {
        if (doc.errors.length > 0) throw new InjectInputError(`document ${i + 1}: ${doc.errors[0]!.message}`);
        const input = doc.toJS() as unknown;
        const { manifest, notes } = injectManifest(input, namespace, settings);
        for (const n of notes) io.stderr.write(`meshlet inject: ${n}\n`);
        // injectManifest copies a List whatever happens to its items: compare values.
        if (manifest === input || isDeepStrictEqual(manifest, input)) continue;
        const end = doc.range[2];
        out += text.slice(written, i === 0 ? 0 : docs[i - 1]!.range[2]) + renderChanged(doc, manifest, text.slice(doc.range[0], end));
        written = end;
      }
      return emit(io, out + text.slice(written));
    },
  },
];

/**
 * A changed document, printed by the yaml library from its own parsed Document with only the
 * changed values replaced (reconcile): comments, key order, flow or block style and quoting of
 * everything the injector did not change are kept; the yaml library's own layout applies to the
 * whole document (2-space indentation, sequences indented under their key). A document with
 * YAML aliases is printed from its values instead (an alias may share what the injector
 * changed): its comments inside the document are not kept.
 */
function renderChanged(doc: Document.Parsed, manifest: unknown, source: string): string {
  let aliased = false;
  visit(doc, {
    Alias() {
      aliased = true;
      return visit.BREAK;
    },
  });
  if (aliased) doc.contents = doc.createNode(manifest) as typeof doc.contents;
  else doc.contents = reconcile(doc, doc.contents, manifest) as typeof doc.contents;
  return doc.toString({ lineWidth: 0, ...layoutOf(source) });
}

/**
 * How the document lays itself out, so a changed document keeps it: the indentation step,
 * whether block sequences are indented under their key (`key:\n  - a`) or not (`key:\n- a`),
 * and whether flow collections are padded (`{ a: 1 }`) or not (`{a: 1}`). Each is read from the
 * first place the document shows it; the yaml library's defaults otherwise.
 */
export function layoutOf(source: string): { indent: number; indentSeq: boolean; flowCollectionPadding: boolean } {
  const lines = source.split('\n').filter((l) => l.trim() !== '' && !l.trimStart().startsWith('#'));
  const lead = (l: string) => l.length - l.trimStart().length;
  let indent = 0;
  let indentSeq: boolean | undefined;
  for (const [i, line] of lines.entries()) {
    const next = lines[i + 1];
    if (next === undefined || !/:\s*(#.*)?$/.test(line) || /^\s*-\s*$/.test(line)) continue;
    const keyIndent = lead(line.replace(/^(\s*)- /, '$1  '));
    if (/^\s*- /.test(next)) indentSeq ??= lead(next) > keyIndent;
    else if (indent === 0 && lead(next) > keyIndent) indent = lead(next) - keyIndent;
    if (indent !== 0 && indentSeq !== undefined) break;
  }
  const flow = /[[{]( ?)[^\s\]}]/.exec(source.replace(/#.*$/gm, ''));
  return { indent: indent >= 1 && indent <= 8 ? indent : 2, indentSeq: indentSeq ?? true, flowCollectionPadding: flow ? flow[1] === ' ' : true };
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** What names a sequence item: its `name` (a container, an env entry, a volume), or an object's kind and metadata. */
function identityOf(v: unknown): string | undefined {
  if (!isPlainObject(v)) return undefined;
  if (typeof v.name === 'string') return `name ${v.name}`;
  const m = v.metadata;
  return isPlainObject(m) && typeof m.name === 'string' ? `object ${String(v.kind)} ${String(m.namespace ?? '')}/${m.name}` : undefined;
}

/**
 * The node for `value`, reusing `node` (and its comments and style) wherever it already says
 * the same: maps keep their pairs (changed values reconciled, dropped keys removed, new keys
 * appended); sequences keep the items that are still there — equal, or maps with the same
 * `name` (a container, an env entry) or the same kind and metadata.name (List items), or the
 * item at the same place when the length did not change — reconciled in order, new items
 * created where they go.
 */
function reconcile(doc: Document, node: unknown, value: unknown): unknown {
  if (isNode(node) && isDeepStrictEqual(node.toJS(doc), value)) return node;
  if (node === null && value === null) return node;
  if (isMap(node) && isPlainObject(value)) {
    const seen = new Set<string>();
    node.items = node.items.filter((pair) => {
      const key = String(isScalar(pair.key) ? pair.key.value : pair.key);
      if (!Object.hasOwn(value, key) || seen.has(key)) return false;
      seen.add(key);
      pair.value = reconcile(doc, pair.value, value[key]);
      return true;
    });
    for (const [key, v] of Object.entries(value)) if (!seen.has(key)) node.items.push(doc.createPair(key, v));
    return node;
  }
  if (isSeq(node) && Array.isArray(value)) {
    const olds = node.items;
    const oldValues = olds.map((n) => (isNode(n) ? n.toJS(doc) : n) as unknown);
    const used = olds.map(() => false);
    let cursor = 0;
    let index = 0;
    const find = (match: (old: unknown) => boolean) => {
      for (let j = cursor; j < olds.length; j++) if (!used[j] && match(oldValues[j])) return j;
      return -1;
    };
    node.items = value.map((v) => {
      let j = find((old) => isDeepStrictEqual(old, v));
      const id = identityOf(v);
      if (j === -1 && id !== undefined) j = find((old) => identityOf(old) === id);
      // Same length: nothing was inserted or removed, the item at the same place is the one.
      const at = index++;
      if (j === -1 && olds.length === value.length && at >= cursor && !used[at]) j = at;
      if (j === -1) return doc.createNode(v);
      used[j] = true;
      cursor = j + 1;
      return reconcile(doc, olds[j], v);
    });
    return node;
  }
  return doc.createNode(value);
}

function emit(io: CommandIo, text: string): number {
  io.stdout.write(text);
  return 0;
}
