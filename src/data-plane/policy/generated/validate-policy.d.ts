// GENERATED FILE: DO NOT EDIT. ajv 8.20.0 standalone validation code for policySchema
// (src/data-plane/policy/policy-schema.ts), written by scripts/generate-policy-validator.ts
// with ajv options {"allErrors":true,"strict":true}. After changing the schema or upgrading ajv,
// regenerate with `npm run generate:policy-validator` (test/unit/policy/policy-validator-generated.test.ts
// fails until validate-policy.d.ts matches).
import type { ErrorObject } from 'ajv';

/** Validates a policy document against policySchema: true when it matches, otherwise `errors` lists every violation (allErrors). */
export interface PolicySchemaValidateFunction {
  (data: unknown): boolean;
  /** The violations of the last call that returned false (null after one that returned true). */
  errors?: ErrorObject[] | null;
}

export declare const validate: PolicySchemaValidateFunction;
export default validate;
