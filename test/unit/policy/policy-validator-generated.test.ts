import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { parse, parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { GENERATED_DIR, generatedFiles, NPM_SCRIPT, POLICY_AJV_OPTIONS } from '../../../scripts/generate-policy-validator.ts';
import { validate as generated } from '../../../src/data-plane/policy/generated/validate-policy.js';
import { policySchema } from '../../../src/data-plane/policy/policy-schema.ts';
import { describeSchemaError, validatePolicySchema } from '../../../src/data-plane/policy/schema.ts';

/**
 * The sidecar validates policies with ajv's standalone code generated from policySchema
 * (src/data-plane/policy/generated/, scripts/generate-policy-validator.ts) instead of compiling
 * the schema at start. The committed code must be what the generator makes of the schema as it
 * is now, and it must judge every document exactly as the schema compiled by ajv does.
 */
const REPO = join(import.meta.dirname, '../../..');
const compiled = new Ajv(POLICY_AJV_OPTIONS).compile(policySchema);

function verdict(validate: { (data: unknown): boolean; errors?: unknown }, doc: unknown) {
  const valid = validate(doc);
  return { valid, errors: validate.errors ?? null };
}

/** Policy documents in the repository: the deployable examples, the test fixtures (ConfigMaps' data values included), docs/policy.md's examples. */
function repositoryDocuments(): { name: string; doc: unknown }[] {
  const out: { name: string; doc: unknown }[] = [];
  const add = (name: string, text: string) => {
    for (const [i, d] of parseAllDocuments(text).entries()) {
      if (d.errors.length > 0) continue;
      const value = d.toJS() as unknown;
      const configMap = value as { kind?: unknown; data?: Record<string, unknown> } | null;
      if (configMap?.kind !== 'ConfigMap') out.push({ name: `${name}#${i}`, doc: value });
      else for (const [key, v] of Object.entries(configMap.data ?? {})) if (typeof v === 'string') add(`${name}#${i} data.${key}`, v);
    }
  };
  for (const f of ['deploy/policy/example-policy-configmap.yaml', 'deploy/examples/policy.yaml']) add(f, readFileSync(join(REPO, f), 'utf8'));
  const fixtures = join(REPO, 'test/fixtures/policy');
  for (const f of readdirSync(fixtures).filter((x) => x.endsWith('.yaml')).sort()) add(`test/fixtures/policy/${f}`, readFileSync(join(fixtures, f), 'utf8'));
  const docs = readFileSync(join(REPO, 'docs/policy.md'), 'utf8');
  for (const [i, m] of [...docs.matchAll(/```ya?ml\n([\s\S]*?)```/g)].entries()) if (m[1]!.includes('AuthorizationPolicy')) add(`docs/policy.md block ${i}`, m[1]!);
  return out;
}

const VALID_BASE = `
apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: orders, namespace: shop }
spec:
  servers:
    - name: orders
      selector: { serviceAccount: orders }
      default: deny
      ports: [{ port: 8080, protocol: http }]
      routes:
        - name: read
          port: 8080
          methods: [GET]
          path: { prefix: /orders }
          callers: [{ namespace: shop }]
`;
type Doc = { apiVersion?: unknown; kind?: unknown; metadata?: Record<string, unknown>; spec: { servers: Record<string, unknown>[] } & Record<string, unknown> };
const base = () => parse(VALID_BASE) as Doc;
const server = (d: Doc) => d.spec.servers[0]!;
const route = (d: Doc) => (server(d).routes as Record<string, unknown>[])[0]!;
const mutate = (f: (d: Doc) => void): Doc => {
  const d = base();
  f(d);
  return d;
};
const astral = '\u{1F600}'; // one code point, two UTF-16 units: what ajv's ucs2length runtime helper counts

/** One invalid document per keyword describeSchemaError words (and a few it leaves to ajv's message), and some with many errors at once. */
const INVALID: [string, string, unknown][] = [
  ['required', 'no spec', { apiVersion: 'policy.meshlet.io/v1alpha1', kind: 'AuthorizationPolicy' }],
  ['required', 'route without callers', mutate((d) => delete route(d).callers)],
  ['additionalProperties', 'unknown field on a route', mutate((d) => (route(d).paths = { exact: '/a' }))],
  ['additionalProperties', 'unknown top-level field', mutate((d) => ((d as Record<string, unknown>).status = {}))],
  ['enum', 'bad default', mutate((d) => (server(d).default = 'allow-all'))],
  ['enum', 'bad protocol', mutate((d) => (server(d).ports = [{ port: 8080, protocol: 'udp' }]))],
  ['const', 'wrong apiVersion', mutate((d) => (d.apiVersion = 'policy.meshlet.io/v1'))],
  ['const', 'anyAuthenticated: false', mutate((d) => (route(d).callers = [{ anyAuthenticated: false }]))],
  ['type', 'document is an array', []],
  ['type', 'port is a string', mutate((d) => (route(d).port = '8080'))],
  ['type', 'port is not an integer', mutate((d) => (route(d).port = 80.5))],
  ['pattern', 'upper-case server name', mutate((d) => (server(d).name = 'Orders'))],
  ['pattern', 'lower-case method', mutate((d) => (route(d).methods = ['get']))],
  ['pattern', 'gRPC service with a dash', mutate((d) => (route(d).grpc = { service: 'shop.v1.Order-Service' }))],
  ['minProperties', 'empty selector', mutate((d) => (server(d).selector = {}))],
  ['minProperties', 'empty caller', mutate((d) => (route(d).callers = [{}]))],
  ['minItems', 'no servers', mutate((d) => (d.spec.servers = []))],
  ['minItems', 'no ports', mutate((d) => (server(d).ports = []))],
  ['maxItems', '17 methods', mutate((d) => (route(d).methods = Array.from({ length: 17 }, () => 'GET')))],
  ['maxLength', '64-character namespace', mutate((d) => (d.metadata!.namespace = 'a'.repeat(64)))],
  ['maxLength', `254 ${astral} in a serviceAccount`, mutate((d) => (server(d).selector = { serviceAccount: astral.repeat(254) }))],
  ['minLength', 'empty route name', mutate((d) => (route(d).name = ''))],
  ['minimum', 'port 0', mutate((d) => (route(d).port = 0))],
  ['maximum', 'port 65536', mutate((d) => (server(d).ports = [{ port: 65536, protocol: 'http' }]))],
  ['additionalProperties', 'a bit of everything', mutate((d) => {
    d.kind = 'Policy';
    server(d).mode = 'dry-run';
    server(d).extra = 1;
    route(d).path = { exact: '', regex: '.*' };
    route(d).callers = [{ namespace: '-x-' }, 'frontend'];
    delete server(d).ports;
  })],
];

describe('the generated policy validator', () => {
  it(`is what the generator makes of the current schema (else: ${NPM_SCRIPT})`, () => {
    for (const f of generatedFiles()) {
      const committed = readFileSync(join(GENERATED_DIR, f.name), 'utf8');
      expect(committed === f.text, `src/data-plane/policy/generated/${f.name} does not match policySchema (or the installed ajv): run \`${NPM_SCRIPT}\` and commit the result`).toBe(true);
    }
  });

  it('is what schema.ts validates with', () => {
    expect(validatePolicySchema).toBe(generated);
  });

  it('judges the repository policy documents as ajv compiling the schema does', () => {
    const documents = repositoryDocuments();
    // The two deployable examples and the valid fixture pass; the set has schema-invalid documents too.
    const valid = documents.filter((d) => compiled(d.doc)).map((d) => d.name);
    expect(valid).toEqual(expect.arrayContaining([expect.stringMatching(/^deploy\/policy\//), expect.stringMatching(/^deploy\/examples\//), expect.stringMatching(/valid-orders\.yaml/)]));
    expect(documents.length - valid.length).toBeGreaterThan(0);
    for (const { name, doc } of documents) expect({ name, ...verdict(generated, doc) }).toEqual({ name, ...verdict(compiled, doc) });
  });

  it.each(INVALID)('rejects (%s) %s with the same errors as ajv compiling the schema', (keyword, _what, doc) => {
    const fresh = verdict(compiled, doc);
    expect(fresh.valid).toBe(false);
    expect((fresh.errors as { keyword: string }[]).map((e) => e.keyword)).toContain(keyword);
    const ours = verdict(generated, doc);
    // Whole error objects: keyword, instancePath, params, and schemaPath and message besides.
    expect(ours).toEqual(fresh);
    expect((ours.errors as Parameters<typeof describeSchemaError>[0][]).map(describeSchemaError)).toEqual((fresh.errors as Parameters<typeof describeSchemaError>[0][]).map(describeSchemaError));
  });

  it('covers every keyword describeSchemaError words, and a multi-byte string within maxLength is valid', () => {
    const source = readFileSync(join(REPO, 'src/data-plane/policy/schema.ts'), 'utf8');
    const worded = [...source.matchAll(/case '(\w+)':/g)].map((m) => m[1]);
    for (const k of worded) expect(INVALID.map(([kw]) => kw)).toContain(k);
    const fits = mutate((d) => (server(d).selector = { serviceAccount: astral.repeat(253) }));
    expect(verdict(generated, fits)).toEqual({ valid: true, errors: null });
    expect(verdict(compiled, fits)).toEqual({ valid: true, errors: null });
  });
});
