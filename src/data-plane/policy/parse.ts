import { isMap, isScalar, LineCounter, parseAllDocuments, Scalar, visit, type Alias, type Document } from 'yaml';
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
    return { ok: false, errors };
  }
  const policy = value as unknown as Policy;
  const findings = semanticChecks(policy).map((f) => located(f, doc));
  const errors = findings.filter((f) => f.severity === 'error');
  if (errors.length > 0) return { ok: false, errors: findings };
  return { ok: true, policy, warnings: findings };
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
}

/** The data keys of a ConfigMap that hold policies: every key ending in .yaml or .yml. */
export function policyKeysOf(data: Readonly<Record<string, unknown>> | undefined): string[] {
  return Object.keys(data ?? {}).filter((k) => /\.ya?ml$/.test(k));
}

/**
 * Reads a file for `meshlet policy check`: each YAML document is either a bare policy or a
 * ConfigMap (kind: ConfigMap) holding policies under its *.yaml / *.yml keys. Errors inside a
 * ConfigMap value are reported at their line in the FILE when the value is a literal block
 * scalar (`|`), else at the value's position.
 */
export function parsePolicyManifest(text: string, source: string): ManifestPolicy[] {
  try {
    return parseManifestDocuments(text, source);
  } catch (err) {
    // parsePolicy never throws; this guards the ConfigMap walk around it (deep nesting).
    return [{ label: source, result: thrownFailure(err, source, 'the file') }];
  }
}

function parseManifestDocuments(text: string, source: string): ManifestPolicy[] {
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter, logLevel: 'error' });
  if (!Array.isArray(docs)) return [{ label: source, result: parsePolicy(text, source) }];
  const real = docs.filter((d) => d.contents !== null || d.errors.length > 0);
  if (real.length <= 1 && !isConfigMap(real[0])) return [{ label: source, result: parsePolicy(text, source) }];
  const out: ManifestPolicy[] = [];
  real.forEach((doc, i) => {
    const docLabel = real.length > 1 ? `${source} (document ${i + 1})` : source;
    if (doc.errors.length > 0 || !isConfigMap(doc)) {
      const slice = text.slice(doc.range[0], doc.range[2]);
      const startLine = lineCounter.linePos(doc.range[0]).line;
      out.push({ label: docLabel, result: shift(parsePolicy(slice, source), startLine - 1, 0) });
      return;
    }
    const name = `${String(doc.getIn(['metadata', 'namespace']) ?? '')}${doc.getIn(['metadata', 'namespace']) ? '/' : ''}${String(doc.getIn(['metadata', 'name']) ?? '?')}`;
    const data = doc.get('data', true);
    const keys = isMap(data) ? data.items.map((p) => (isScalar(p.key) ? String(p.key.value) : '')).filter((k) => /\.ya?ml$/.test(k)) : [];
    if (keys.length === 0) {
      const pos = lineCounter.linePos(doc.range[0]);
      out.push({
        label: `${docLabel}: ConfigMap ${name}`,
        result: { ok: false, errors: [{ severity: 'error', code: 'POLICY_CONFIGMAP_NO_KEY', message: `ConfigMap ${name} has no data key ending in .yaml or .yml holding a policy`, path: 'data', source, line: pos.line, col: pos.col }] },
      });
      return;
    }
    for (const key of keys) {
      const node = doc.getIn(['data', key], true);
      const value = isScalar(node) ? node.value : undefined;
      const label = `${docLabel}: ConfigMap ${name} data[${key}]`;
      if (typeof value !== 'string') {
        const pos = lineCounter.linePos((node as Scalar | undefined)?.range?.[0] ?? doc.range[0]);
        out.push({ label, result: { ok: false, errors: [{ severity: 'error', code: 'POLICY_SCHEMA', message: 'a ConfigMap data value must be a string', path: `data.${key}`, source, line: pos.line, col: pos.col }] } });
        continue;
      }
      const result = parsePolicy(value, `${source} data[${key}]`);
      const scalar = node as Scalar;
      const start = lineCounter.linePos(scalar.range![0]);
      if (scalar.type === Scalar.BLOCK_LITERAL) {
        // Content starts on the line after the "|" indicator, indented; map lines back into the file.
        const firstContentOffset = text.indexOf('\n', scalar.range![0]) + 1;
        let indent = 0;
        while (text[firstContentOffset + indent] === ' ') indent++;
        out.push({ label, result: relabel(shift(result, start.line, indent), source) });
      } else {
        out.push({ label, result: relabel(pin(result, start.line, start.col), source) });
      }
    }
  });
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
