/**
 * Generates src/data-plane/policy/generated/validate-policy.js: ajv's standalone validation code
 * for the policy JSON schema (src/data-plane/policy/policy-schema.ts), so the sidecar validates
 * policies without loading ajv's compiler (about 5 MB of RSS and 1.4 MB of heap per sidecar).
 * Also writes the declaration file next to it (validate-policy.d.ts).
 *
 *   node scripts/generate-policy-validator.ts            (npm run generate:policy-validator)
 *   node scripts/generate-policy-validator.ts --check    exit 1 if the committed files are stale
 *   node scripts/generate-policy-validator.ts --out DIR  write into DIR instead
 *
 * Run it after changing the schema (or anything it takes from limits.ts, normalize-path.ts,
 * types.ts) or upgrading ajv; test/unit/policy/policy-validator-generated.test.ts fails until
 * the committed files match what this produces.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type Options } from 'ajv';
// A CommonJS module: its default import is module.exports, the function, whose `default` is itself (what TypeScript sees).
import standalone from 'ajv/dist/standalone/index.js';
import { policySchema } from '../src/data-plane/policy/policy-schema.ts';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const GENERATED_DIR = join(REPO, 'src/data-plane/policy/generated');
export const GENERATED_JS = 'validate-policy.js';
export const GENERATED_DTS = 'validate-policy.d.ts';
export const NPM_SCRIPT = 'npm run generate:policy-validator';

/** The options the policy schema was always compiled with at run time; the generated code is compiled with exactly these. */
export const POLICY_AJV_OPTIONS = { allErrors: true, strict: true } as const satisfies Options;

const ajvVersion = (createRequire(import.meta.url)('ajv/package.json') as { version: string }).version;

function header(file: string): string {
  return [
    `// GENERATED FILE: DO NOT EDIT. ajv ${ajvVersion} standalone validation code for policySchema`,
    '// (src/data-plane/policy/policy-schema.ts), written by scripts/generate-policy-validator.ts',
    `// with ajv options ${JSON.stringify(POLICY_AJV_OPTIONS)}. After changing the schema or upgrading ajv,`,
    `// regenerate with \`${NPM_SCRIPT}\` (test/unit/policy/policy-validator-generated.test.ts`,
    `// fails until ${file} matches).`,
    '',
  ].join('\n');
}

/**
 * The generated validator's source. ajv's ESM output still loads its runtime helpers (ucs2length
 * for minLength/maxLength) with `require("ajv/dist/runtime/…")`, which an ES module does not
 * have: a `require` made by createRequire is put in front. Importing the helpers instead would
 * not do: their default export is the CommonJS module object under Node and the function itself
 * under vitest's interop.
 */
export function generatePolicyValidatorSource(): string {
  const ajv = new Ajv({ ...POLICY_AJV_OPTIONS, code: { source: true, esm: true } });
  let code = standalone.default(ajv, ajv.compile(policySchema));
  const required = [...code.matchAll(/\brequire\(\s*(["'])([^"']+)\1\s*\)/g)].map((m) => m[2]!);
  const unexpected = required.filter((r) => !/^ajv\/dist\/runtime\/[\w-]+$/.test(r));
  if (unexpected.length > 0) throw new Error(`ajv's standalone code requires ${unexpected.join(', ')}: only ajv/dist/runtime/* helpers are expected (update scripts/generate-policy-validator.ts)`);
  if (/(?:^|[;\n])\s*import[\s{*]/.test(code)) throw new Error("ajv's standalone code has its own imports: update scripts/generate-policy-validator.ts");
  if (!code.startsWith('"use strict";')) throw new Error('ajv\'s standalone code no longer starts with "use strict": update scripts/generate-policy-validator.ts');
  code = code.slice('"use strict";'.length); // an ES module is strict anyway, and the imports go first
  const prelude = required.length > 0 ? 'import { createRequire } from "node:module";\nconst require = createRequire(import.meta.url);\n' : '';
  return `${header(GENERATED_JS)}${prelude}${code}\n`;
}

/** The declaration file: the validator as src/data-plane/policy/schema.ts exposes it. */
export function generatePolicyValidatorTypes(): string {
  return `${header(GENERATED_DTS)}import type { ErrorObject } from 'ajv';

/** Validates a policy document against policySchema: true when it matches, otherwise \`errors\` lists every violation (allErrors). */
export interface PolicySchemaValidateFunction {
  (data: unknown): boolean;
  /** The violations of the last call that returned false (null after one that returned true). */
  errors?: ErrorObject[] | null;
}

export declare const validate: PolicySchemaValidateFunction;
export default validate;
`;
}

export function generatedFiles(): { name: string; text: string }[] {
  return [
    { name: GENERATED_JS, text: generatePolicyValidatorSource() },
    { name: GENERATED_DTS, text: generatePolicyValidatorTypes() },
  ];
}

function main(argv: string[]): number {
  let out = GENERATED_DIR;
  let check = false;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--check') check = true;
    else if (argv[i] === '--out' && argv[i + 1]) out = resolve(argv[++i]!);
    else {
      process.stderr.write(`generate-policy-validator: unknown argument ${JSON.stringify(argv[i])} (usage: node scripts/generate-policy-validator.ts [--check] [--out DIR])\n`);
      return 2;
    }
  }
  const files = generatedFiles();
  if (check) {
    const stale = files.filter((f) => {
      try {
        return readFileSync(join(out, f.name), 'utf8') !== f.text;
      } catch {
        return true;
      }
    });
    for (const f of stale) process.stderr.write(`generate-policy-validator: ${relative(process.cwd(), join(out, f.name))} is stale or missing: run \`${NPM_SCRIPT}\`\n`);
    return stale.length > 0 ? 1 : 0;
  }
  mkdirSync(out, { recursive: true });
  for (const f of files) writeFileSync(join(out, f.name), f.text);
  process.stdout.write(`generate-policy-validator: wrote ${files.map((f) => relative(process.cwd(), join(out, f.name))).join(', ')}\n`);
  return 0;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) process.exitCode = main(process.argv.slice(2));
