import { isMap, isScalar, isSeq, LineCounter, parseAllDocuments, Scalar, visit, type Alias, type Document, type YAMLMap } from 'yaml';
import { checkLimits, POLICY_LIMITS } from './limits.ts';
import { describeSchemaError, validatePolicySchema } from './schema.ts';
import { formatPath, semanticChecks, type Finding } from './semantic-checks.ts';
import type { ParseResult, Policy, PolicyError } from './types.ts';

/**
 * Parses one policy document (YAML text) into a validated Policy, or every error with its
 * location: size, YAML syntax, alias expansion, limits, schema, then semantic checks. Schema
 * errors stop before semantic checks (those need a well-formed document); all errors of a
 * stage are reported at once (up to POLICY_LIMITS.maxReportedFindings).
 *
 * It never throws: whatever the text holds (an alias bomb, nesting deep enough to overflow
 * the stack, a megabyte of garbage) comes back as errors, because a throw here is a crashed
 * sidecar, a 500 from /validate or a stack trace from `policy check`. The work is bounded by
 * POLICY_LIMITS (docs/policy.md "Limits") before the schema or the checks look at anything.
 */
export function parsePolicy(text: string, source?: string): ParseResult {
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > POLICY_LIMITS.maxDocumentBytes) {
    const kib = POLICY_LIMITS.maxDocumentBytes / 1024;
    return policyFailure(source, 'POLICY_TOO_LARGE', `the policy document is ${bytes} bytes; the limit is ${POLICY_LIMITS.maxDocumentBytes} bytes (${kib} KiB) per document (docs/policy.md#limits)`);
  }
  try {
    return capFindings(parseBounded(text, source));
  } catch (err) {
    return thrownFailure(err, source, 'the policy');
  }
}

/** A refusal of the whole document, located at its start (also parse-off-thread.ts's). */
export function policyFailure(source: string | undefined, code: string, message: string): ParseResult {
  const e: PolicyError = { severity: 'error', code, message, path: '', line: 1, col: 1 };
  if (source !== undefined) e.source = source;
  return { ok: false, errors: [e] };
}

/**
 * A throw out of the parse: only the stack can still give out (the yaml composer recurses on
 * nesting); anything else is a bug, reported as an error rather than thrown.
 */
function thrownFailure(err: unknown, source: string | undefined, what: string): ParseResult {
  if (err instanceof RangeError && /call stack/i.test(err.message)) return policyFailure(source, 'POLICY_TOO_COMPLEX', 'the document is nested too deeply to parse');
  return policyFailure(source, 'POLICY_INTERNAL', `${what} could not be parsed: ${(err as Error)?.message ?? String(err)}`);
}

/** Keeps at most maxReportedFindings findings, and says how many more there were. */
function capFindings(r: ParseResult): ParseResult {
  const max = POLICY_LIMITS.maxReportedFindings;
  const list = r.ok ? r.warnings : r.errors;
  if (list.length <= max) return r;
  const rest = list.slice(max);
  const errors = rest.filter((e) => e.severity === 'error').length;
  const more: PolicyError = {
    severity: r.ok ? 'warning' : 'error',
    code: 'POLICY_TOO_MANY_ERRORS',
    message: `${rest.length} more finding(s) not shown (${errors} error(s)); fix the ones above first`,
    path: '',
    ...(list[0]?.source !== undefined ? { source: list[0].source } : {}),
  };
  const kept = [...list.slice(0, max), more];
  return r.ok ? { ok: true, policy: r.policy, warnings: kept } : { ok: false, errors: kept };
}

function parseBounded(text: string, source: string | undefined): ParseResult {
  const lineCounter = new LineCounter();
  // logLevel error: yaml's warnings (collection keys stringified, …) would go to process warnings.
  const docs = parseAllDocuments(text, { lineCounter, prettyErrors: false, logLevel: 'error' });
  const located = (f: Finding, doc: Document | undefined): PolicyError => locate(f, doc, lineCounter, source);
  if (!Array.isArray(docs)) return { ok: false, errors: [located({ severity: 'error', code: 'POLICY_EMPTY', message: 'the document is empty', at: [] }, undefined)] };
  const real = docs.filter((d) => d.contents !== null || d.errors.length > 0);
  if (real.length === 0) return { ok: false, errors: [located({ severity: 'error', code: 'POLICY_EMPTY', message: 'the document is empty', at: [] }, undefined)] };
  if (real.length > 1) {
    return { ok: false, errors: [located({ severity: 'error', code: 'POLICY_MULTIPLE_DOCUMENTS', message: `expected one YAML document, found ${real.length}`, at: [] }, undefined)] };
  }
  const doc = real[0]!;
  if (doc.errors.length > 0) {
    return {
      ok: false,
      errors: doc.errors.map((e) => {
        const pos = lineCounter.linePos(e.pos[0]);
        // yaml turns its own stack overflow on deep nesting into a document error.
        const tooDeep = /call stack/i.test(e.message);
        const code = tooDeep ? 'POLICY_TOO_COMPLEX' : 'POLICY_YAML';
        const message = tooDeep ? 'the document is nested too deeply to parse' : e.message.split('\n')[0]!;
        return withLocation({ severity: 'error', code, message, path: '', ...(source !== undefined ? { source } : {}) }, pos.line, pos.col);
      }),
    };
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: POLICY_LIMITS.maxAliasCount });
  } catch (err) {
    if (!(err instanceof ReferenceError)) throw err;
    // yaml's own words: "Excessive alias count indicates a resource exhaustion attack",
    // "Unresolved alias …". Both point at the first alias of the document.
    const alias = firstAlias(doc);
    const pos = lineCounter.linePos(alias?.range?.[0] ?? 0);
    const excessive = /excessive alias/i.test(err.message);
    const e: PolicyError = excessive
      ? { severity: 'error', code: 'POLICY_ALIAS_LIMIT', message: `YAML aliases expand past the limit of ${POLICY_LIMITS.maxAliasCount} (an alias bomb, or one anchor reused too often; docs/policy.md#limits)`, path: '' }
      : { severity: 'error', code: 'POLICY_YAML', message: err.message.split('\n')[0]!, path: '' };
    if (source !== undefined) e.source = source;
    return { ok: false, errors: [withLocation(e, pos.line, pos.col)] };
  }
  const overLimits = checkLimits(value);
  if (overLimits.length > 0) return { ok: false, errors: overLimits.map((f) => located(f, doc)) };
  // Neither side declared: said by name, with the schema's other errors when there are some.
  const noSide = declaresNoSide(value) ? located({ severity: 'error', code: 'POLICY_SCHEMA', message: 'spec declares neither "servers" nor "clients": a policy needs at least one of the two', at: ['spec'] }, doc) : null;
  if (!validatePolicySchema(value)) {
    const seen = new Set<string>();
    const errors: PolicyError[] = [];
    for (const e of validatePolicySchema.errors ?? []) {
      const { at, message, onKey } = describeSchemaError(e);
      const key = `${formatPath(at)} ${message}`;
      if (seen.has(key)) continue;
      seen.add(key);
      errors.push(located({ severity: 'error', code: 'POLICY_SCHEMA', message, at, ...(onKey ? { onKey } : {}) }, doc));
    }
    if (noSide !== null) errors.push(noSide);
    return { ok: false, errors };
  }
  if (noSide !== null) return { ok: false, errors: [noSide] };
  // A document of clients only: no server, the same as a policy whose servers select nothing.
  const spec = (value as { spec: { servers?: unknown } }).spec;
  if (spec.servers === undefined) spec.servers = [];
  const policy = value as unknown as Policy;
  const findings = semanticChecks(policy).map((f) => located(f, doc));
  const errors = findings.filter((f) => f.severity === 'error');
  if (errors.length > 0) return { ok: false, errors: findings };
  return { ok: true, policy, warnings: findings };
}

/** `spec` is a mapping with neither `servers` nor `clients` (the schema requires neither alone). */
function declaresNoSide(value: unknown): boolean {
  const spec = (value as { spec?: unknown } | null)?.spec;
  return typeof spec === 'object' && spec !== null && !Array.isArray(spec) && !('servers' in spec) && !('clients' in spec);
}

function firstAlias(doc: Document): Alias | undefined {
  let found: Alias | undefined;
  visit(doc, {
    Alias(_key, node) {
      found = node;
      return visit.BREAK;
    },
  });
  return found;
}

function withLocation(e: PolicyError, line: number | undefined, col: number | undefined): PolicyError {
  if (line !== undefined) e.line = line;
  if (col !== undefined) e.col = col;
  return e;
}

/** Places a finding at the deepest node of its path that exists in the document. */
function locate(f: Finding, doc: Document | undefined, lineCounter: LineCounter, source: string | undefined): PolicyError {
  const e: PolicyError = { severity: f.severity, code: f.code, message: f.message, path: formatPath(f.at) };
  if (source !== undefined) e.source = source;
  if (!doc) return withLocation(e, 1, 1);
  for (let n = f.at.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(f.at.slice(0, n), true);
    const range = (node as { range?: [number, number, number] } | undefined)?.range;
    if (range) {
      // For an unknown field, point at the key rather than its value.
      const keyNode = f.onKey && n === f.at.length && n > 0 ? findKey(doc, f.at.slice(0, n - 1), f.at[n - 1]!) : undefined;
      const pos = lineCounter.linePos(keyNode?.range?.[0] ?? range[0]);
      return withLocation(e, pos.line, pos.col);
    }
  }
  return withLocation(e, 1, 1);
}

function findKey(doc: Document, parent: (string | number)[], key: string | number): Scalar | undefined {
  const map = parent.length === 0 ? doc.contents : doc.getIn(parent, true);
  if (!isMap(map)) return undefined;
  for (const pair of map.items) if (isScalar(pair.key) && pair.key.value === key) return pair.key;
  return undefined;
}

/** One policy found in a file: a bare document, or one key of a ConfigMap. */
export interface ManifestPolicy {
  /** "file.yaml", or "file.yaml: ConfigMap ns/name data[policy.yaml]". */
  label: string;
  result: ParseResult;
  /** What held it: a policy document, one key of a ConfigMap, or a policy ConfigMap without a policy key. */
  from?: 'document' | 'configmap-key' | 'configmap';
}

/** The data keys of a ConfigMap that hold policies: every key ending in .yaml or .yml. */
export function policyKeysOf(data: Readonly<Record<string, unknown>> | undefined): string[] {
  return Object.keys(data ?? {}).filter((k) => /\.ya?ml$/.test(k));
}

/**
 * Reads a file for `meshlet policy explain` and tests: each YAML document is either a bare
 * policy or a ConfigMap (kind: ConfigMap, any) holding policies under its *.yaml / *.yml keys.
 * Errors inside a ConfigMap value are reported at their line in the FILE when the value is a
 * literal block scalar (`|`), else at the value's position. `findPolicies` is the reader that
 * picks the policies out of a stream of other objects (`meshlet policy check`).
 */
export function parsePolicyManifest(text: string, source: string): ManifestPolicy[] {
  try {
    return parseManifestDocuments(text, source);
  } catch (err) {
    // parsePolicy never throws; this guards the ConfigMap walk around it (deep nesting).
    return [{ label: source, result: thrownFailure(err, source, 'the file'), from: 'document' }];
  }
}

function parseManifestDocuments(text: string, source: string): ManifestPolicy[] {
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter, logLevel: 'error' });
  if (!Array.isArray(docs)) return [{ label: source, result: parsePolicy(text, source), from: 'document' }];
  const real = docs.filter((d) => d.contents !== null || d.errors.length > 0);
  if (real.length <= 1 && !isConfigMap(real[0])) return [{ label: source, result: parsePolicy(text, source), from: 'document' }];
  const out: ManifestPolicy[] = [];
  const ctx = { text, lineCounter, source };
  real.forEach((doc, i) => {
    const docLabel = real.length > 1 ? `${source} (document ${i + 1})` : source;
    if (doc.errors.length > 0 || !isConfigMap(doc)) out.push(documentPolicy(ctx, doc.range, docLabel, false));
    else out.push(...configMapPolicies(ctx, doc.contents as YAMLMap, docLabel, 'every', doc.range[0]));
  });
  return out;
}

/** How `findPolicies` tells a policy ConfigMap from any other (the CLI passes the deployment's names). */
export interface PolicyConfigMapRules {
  /** A ConfigMap with this label is a policy ConfigMap (the /validate webhook's objectSelector): meshlet.io/policy=true. */
  label: readonly [key: string, value: string];
  /** ConfigMap names the injector mounts as the policy (meshlet-policy). */
  names: readonly string[];
}

/** An object of the stream that is not a policy, and where it was. */
export interface SkippedObject {
  /** "file.yaml:12" */
  source: string;
  /** The object's kind, or "(not a Kubernetes object)" for a document with neither apiVersion nor kind. */
  kind: string;
  apiVersion: string | null;
  /** "namespace/name", "name", or null. */
  name: string | null;
}

export interface FoundPolicies {
  policies: ManifestPolicy[];
  skipped: SkippedObject[];
}

/** The apiVersion group every policy document declares. */
export const POLICY_API_GROUP = 'policy.meshlet.io';
const POLICY_API_VERSION_IN_TEXT = /(?:^|[\s{,"'])["']?apiVersion["']?\s*:\s*["']?policy\.meshlet\.io\//m;

/**
 * Picks the policies out of a stream of Kubernetes objects (`kubectl kustomize … | meshlet
 * policy check -`, a directory of manifests) and says what it skipped. A YAML document, or an
 * item of a `kind: List`, is:
 *
 * - a **policy document** when its apiVersion is `policy.meshlet.io/…`, or its kind is
 *   `AuthorizationPolicy` and it has no apiVersion (Istio's kind of that name, in
 *   security.istio.io, is another object);
 * - a **policy ConfigMap** (kind ConfigMap) when it carries `rules.label`, is named one of
 *   `rules.names` — every *.yaml / *.yml key is then checked, as /validate does, and no such
 *   key is POLICY_CONFIGMAP_NO_KEY — or when a *.yaml / *.yml key's value declares
 *   `apiVersion: policy.meshlet.io/…` (then those keys only). An unlabelled one is warned about
 *   (POLICY_CONFIGMAP_UNLABELLED): /validate never sees it;
 * - **skipped** when it has an apiVersion and a kind (any other object);
 * - a document with neither (or a YAML document that does not parse): with `unknown: 'check'`
 *   parsed as a policy, so a policy missing its header still gets its errors; with
 *   `unknown: 'skip'` (files found in a directory: dashboards, kustomize configurations)
 *   skipped — except a YAML error, which is always reported.
 *
 * An input of ONE document that is not a ConfigMap, a List or another object is parsed whole as
 * a policy (with `unknown: 'check'`), exactly as parsePolicy: a plain policy file's messages
 * and locations do not depend on this function.
 */
export function findPolicies(text: string, source: string, rules: PolicyConfigMapRules, unknown: 'check' | 'skip'): FoundPolicies {
  try {
    return findInDocuments(text, source, rules, unknown);
  } catch (err) {
    return { policies: [{ label: source, result: thrownFailure(err, source, 'the file'), from: 'document' }], skipped: [] };
  }
}

type Role = { is: 'policy' } | { is: 'configmap'; keys: 'every' | string[]; labelled: boolean } | { is: 'list'; items: unknown[] } | { is: 'skip'; kind: string; apiVersion: string | null } | { is: 'unknown' };

function findInDocuments(text: string, source: string, rules: PolicyConfigMapRules, unknown: 'check' | 'skip'): FoundPolicies {
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter, logLevel: 'error' });
  const real = Array.isArray(docs) ? docs.filter((d) => d.contents !== null || d.errors.length > 0) : [];
  const plain = (): FoundPolicies => ({ policies: [{ label: source, result: parsePolicy(text, source), from: 'document' }], skipped: [] });
  if (real.length === 0) return unknown === 'check' ? plain() : { policies: [], skipped: [] };
  if (real.length === 1 && unknown === 'check') {
    // One document that is not a ConfigMap, a List or another object: a plain policy file.
    const role = real[0]!.errors.length > 0 ? 'unknown' : roleOf(real[0]!.contents, rules).is;
    if (role === 'policy' || role === 'unknown') return plain();
  }
  const ctx = { text, lineCounter, source };
  const found: FoundPolicies = { policies: [], skipped: [] };
  real.forEach((doc, i) => {
    const docLabel = real.length > 1 ? `${source} (document ${i + 1})` : source;
    if (doc.errors.length > 0) {
      found.policies.push(documentPolicy(ctx, doc.range, docLabel, false));
      return;
    }
    visitNode(ctx, doc.contents, doc.range, docLabel, rules, unknown, found, false);
  });
  return found;
}

interface ScanContext {
  text: string;
  lineCounter: LineCounter;
  source: string;
}

function visitNode(ctx: ScanContext, node: unknown, range: readonly number[], label: string, rules: PolicyConfigMapRules, unknown: 'check' | 'skip', found: FoundPolicies, inList: boolean): void {
  const role = roleOf(node, rules);
  switch (role.is) {
    case 'list':
      role.items.forEach((item, j) => {
        const r = (item as { range?: [number, number, number] }).range ?? range;
        visitNode(ctx, item, r, `${label} (item ${j + 1})`, rules, unknown, found, true);
      });
      return;
    case 'configmap': {
      const policies = configMapPolicies(ctx, node as YAMLMap, label, role.keys);
      found.policies.push(...(role.labelled ? policies : policies.map((p) => unlabelled(p, ctx, node as YAMLMap, rules))));
      return;
    }
    case 'policy':
      found.policies.push(documentPolicy(ctx, range, label, inList));
      return;
    case 'unknown':
      if (unknown === 'check') found.policies.push(documentPolicy(ctx, range, label, inList));
      else found.skipped.push({ source: `${ctx.source}:${ctx.lineCounter.linePos(range[0]!).line}`, kind: '(not a Kubernetes object)', apiVersion: null, name: null });
      return;
    case 'skip':
      found.skipped.push({ source: `${ctx.source}:${ctx.lineCounter.linePos(range[0]!).line}`, kind: role.kind, apiVersion: role.apiVersion, name: objectName(node as YAMLMap) });
  }
}

function roleOf(node: unknown, rules: PolicyConfigMapRules): Role {
  if (!isMap(node)) return { is: 'unknown' };
  const kind = node.get('kind');
  const apiVersion = node.get('apiVersion');
  const k = typeof kind === 'string' ? kind : null;
  const v = typeof apiVersion === 'string' ? apiVersion : null;
  if (v !== null && v.startsWith(`${POLICY_API_GROUP}/`)) return { is: 'policy' };
  if (k === 'AuthorizationPolicy' && v === null) return { is: 'policy' };
  if (k === 'List' || (k !== null && k.endsWith('List') && isSeq(node.get('items')))) {
    const items = node.get('items');
    if (isSeq(items)) return { is: 'list', items: items.items };
  }
  if (k === 'ConfigMap' && (v === null || v === 'v1')) {
    const labels = node.getIn(['metadata', 'labels']);
    const labelled = isMap(labels) && String(labels.get(rules.label[0]) ?? '') === rules.label[1];
    const name = node.getIn(['metadata', 'name']);
    if (labelled || (typeof name === 'string' && rules.names.includes(name))) return { is: 'configmap', keys: 'every', labelled };
    const data = node.get('data', true);
    const keys = isMap(data)
      ? data.items.filter((p) => isScalar(p.key) && /\.ya?ml$/.test(String(p.key.value)) && isScalar(p.value) && typeof p.value.value === 'string' && POLICY_API_VERSION_IN_TEXT.test(p.value.value)).map((p) => String((p.key as Scalar).value))
      : [];
    if (keys.length > 0) return { is: 'configmap', keys, labelled: false };
    return { is: 'skip', kind: 'ConfigMap', apiVersion: v };
  }
  if (k !== null && v !== null) return { is: 'skip', kind: k, apiVersion: v };
  return { is: 'unknown' };
}

function objectName(node: YAMLMap): string | null {
  const ns = node.getIn(['metadata', 'namespace']);
  const name = node.getIn(['metadata', 'name']);
  if (typeof name !== 'string') return null;
  return typeof ns === 'string' && ns !== '' ? `${ns}/${name}` : name;
}

/** Adds POLICY_CONFIGMAP_UNLABELLED to one key's result. */
function unlabelled(p: ManifestPolicy, ctx: ScanContext, node: YAMLMap, rules: PolicyConfigMapRules): ManifestPolicy {
  const pos = ctx.lineCounter.linePos((node.get('metadata', true) as YAMLMap | undefined)?.range?.[0] ?? node.range?.[0] ?? 0);
  const w: PolicyError = {
    severity: 'warning',
    code: 'POLICY_CONFIGMAP_UNLABELLED',
    message: `ConfigMap ${configMapName(node)} holds a policy but is not labelled ${rules.label[0]}: "${rules.label[1]}": the /validate webhook never checks it at kubectl apply time (docs/policy.md#the-validate-webhook)`,
    path: 'metadata.labels',
    source: ctx.source,
    line: pos.line,
    col: pos.col,
  };
  return { ...p, result: p.result.ok ? { ...p.result, warnings: [w, ...p.result.warnings] } : { ok: false, errors: [w, ...p.result.errors] } };
}

function configMapName(node: YAMLMap): string {
  const ns = node.getIn(['metadata', 'namespace']);
  return `${String(ns ?? '')}${ns ? '/' : ''}${String(node.getIn(['metadata', 'name']) ?? '?')}`;
}

/**
 * One document (or List item) parsed as a policy, its findings placed in the file. An item of
 * a List is indented in the file: it is padded to its column, so columns need no shift.
 */
function documentPolicy(ctx: ScanContext, range: readonly number[], label: string, indented: boolean): ManifestPolicy {
  const start = ctx.lineCounter.linePos(range[0]!);
  const slice = ctx.text.slice(range[0], range[2]);
  const text = indented ? ' '.repeat(start.col - 1) + slice : slice;
  return { label, result: shift(parsePolicy(text, ctx.source), start.line - 1, 0), from: 'document' };
}

/** The policies of a ConfigMap: `keys` 'every' (every *.yaml / *.yml key; none is an error) or the keys named. */
function configMapPolicies(ctx: ScanContext, node: YAMLMap, docLabel: string, keys: 'every' | string[], at = node.range?.[0] ?? 0): ManifestPolicy[] {
  const { text, lineCounter, source } = ctx;
  const name = configMapName(node);
  const data = node.get('data', true);
  const chosen = keys !== 'every' ? keys : isMap(data) ? data.items.map((p) => (isScalar(p.key) ? String(p.key.value) : '')).filter((k) => /\.ya?ml$/.test(k)) : [];
  if (chosen.length === 0) {
    const pos = lineCounter.linePos(at);
    return [{
      label: `${docLabel}: ConfigMap ${name}`,
      result: { ok: false, errors: [{ severity: 'error', code: 'POLICY_CONFIGMAP_NO_KEY', message: `ConfigMap ${name} has no data key ending in .yaml or .yml holding a policy`, path: 'data', source, line: pos.line, col: pos.col }] },
      from: 'configmap',
    }];
  }
  const out: ManifestPolicy[] = [];
  for (const key of chosen) {
    const valueNode = node.getIn(['data', key], true);
    const value = isScalar(valueNode) ? valueNode.value : undefined;
    const label = `${docLabel}: ConfigMap ${name} data[${key}]`;
    if (typeof value !== 'string') {
      const pos = lineCounter.linePos((valueNode as Scalar | undefined)?.range?.[0] ?? at);
      out.push({ label, result: { ok: false, errors: [{ severity: 'error', code: 'POLICY_SCHEMA', message: 'a ConfigMap data value must be a string', path: `data.${key}`, source, line: pos.line, col: pos.col }] }, from: 'configmap-key' });
      continue;
    }
    const result = parsePolicy(value, `${source} data[${key}]`);
    const scalar = valueNode as Scalar;
    const start = lineCounter.linePos(scalar.range![0]);
    if (scalar.type === Scalar.BLOCK_LITERAL) {
      // Content starts on the line after the "|" indicator, indented; map lines back into the file.
      const firstContentOffset = text.indexOf('\n', scalar.range![0]) + 1;
      let indent = 0;
      while (text[firstContentOffset + indent] === ' ') indent++;
      out.push({ label, result: relabel(shift(result, start.line, indent), source), from: 'configmap-key' });
    } else {
      out.push({ label, result: relabel(pin(result, start.line, start.col), source), from: 'configmap-key' });
    }
  }
  return out;
}

function isConfigMap(doc: Document | undefined): boolean {
  return doc !== undefined && doc.errors.length === 0 && doc.get('kind') === 'ConfigMap';
}

function mapFindings(r: ParseResult, f: (e: PolicyError) => PolicyError): ParseResult {
  return r.ok ? { ok: true, policy: r.policy, warnings: r.warnings.map(f) } : { ok: false, errors: r.errors.map(f) };
}
function shift(r: ParseResult, lines: number, cols: number): ParseResult {
  return mapFindings(r, (e) => (e.line === undefined ? e : { ...e, line: e.line + lines, col: (e.col ?? 1) + cols }));
}
function pin(r: ParseResult, line: number, col: number): ParseResult {
  return mapFindings(r, (e) => ({ ...e, line, col }));
}
function relabel(r: ParseResult, source: string): ParseResult {
  return mapFindings(r, (e) => ({ ...e, source }));
}

/** "file:12:5: error POLICY_SCHEMA at spec.servers[0].name: must match …" */
export function formatPolicyError(e: PolicyError): string {
  const where = [e.source ?? '<input>', e.line, e.col].filter((x) => x !== undefined).join(':');
  return `${where}: ${e.severity} ${e.code}${e.path ? ` at ${e.path}` : ''}: ${e.message}`;
}
