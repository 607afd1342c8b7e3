import type { ErrorObject } from 'ajv';
import { validate, type PolicySchemaValidateFunction } from './generated/validate-policy.js';

// The schema itself lives in policy-schema.ts (no ajv there: the generator imports it);
// re-exported for those who read it from here.
export { policySchema } from './policy-schema.ts';

/**
 * Validates a policy document against policySchema, as `new Ajv({ allErrors: true, strict: true })
 * .compile(policySchema)` would: the same verdict, the same `errors`. It is ajv's standalone code,
 * generated ahead of time (generated/validate-policy.js, `npm run generate:policy-validator`), so
 * the sidecar does not load ajv's compiler (about 5 MB of RSS and 1.4 MB of heap per sidecar).
 */
export const validatePolicySchema: PolicySchemaValidateFunction = validate;

/** Turns one ajv error into a readable message and the document path it is about. */
export function describeSchemaError(err: ErrorObject): { at: (string | number)[]; message: string; onKey?: boolean } {
  const at: (string | number)[] = err.instancePath
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((p) => (/^\d+$/.test(p) ? Number(p) : p));
  const p = err.params as Record<string, unknown>;
  switch (err.keyword) {
    case 'required':
      return { at, message: `missing required field "${String(p.missingProperty)}"` };
    case 'additionalProperties':
      return { at: [...at, String(p.additionalProperty)], message: `unknown field "${String(p.additionalProperty)}"`, onKey: true };
    case 'enum':
      return { at, message: `must be one of: ${(p.allowedValues as unknown[]).map(String).join(', ')}` };
    case 'const':
      return { at, message: `must be ${JSON.stringify(p.allowedValue)}` };
    case 'type':
      return { at, message: `must be ${/^[aeiou]/.test(String(p.type)) ? 'an' : 'a'} ${String(p.type)}` };
    case 'pattern':
      return { at, message: `must match ${String(p.pattern)}` };
    case 'minProperties':
      return { at, message: 'must not be empty' };
    case 'minItems':
      return { at, message: `must have at least ${String(p.limit)} item(s)` };
    case 'maxItems':
      return { at, message: `must have at most ${String(p.limit)} item(s) (docs/policy.md#limits)` };
    case 'maxLength':
      return { at, message: `must be at most ${String(p.limit)} characters long` };
    default:
      return { at, message: err.message ?? err.keyword };
  }
}
