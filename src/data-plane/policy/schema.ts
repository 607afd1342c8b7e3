import { Ajv, type ErrorObject } from 'ajv';
import { POLICY_LIMITS } from './limits.ts';
import { MAX_PATH_LENGTH } from './normalize-path.ts';
import { DEFAULT_POLICIES, PATH_MATCHING_MODES, PORT_PROTOCOLS, POLICY_API_VERSION, POLICY_KIND } from './types.ts';

/**
 * The JSON schema of a policy document. Structure only: rules that need context (duplicate
 * names, SPIFFE ID syntax, route ports that the server declares, shadowed routes) live in
 * semantic-checks.ts, where they get precise messages. Callers and path matches are
 * "exactly one of" shapes; the schema keeps them open objects and the semantic checks name
 * the conflict, because ajv's oneOf errors are unreadable. The array caps (maxItems) repeat
 * POLICY_LIMITS for readers of the schema; checkLimits enforces them first, before ajv walks.
 */
const dnsLabel = { type: 'string', minLength: 1, maxLength: 63, pattern: '^[a-z0-9]([a-z0-9-]*[a-z0-9])?$' } as const;
const routeName = { type: 'string', minLength: 1, maxLength: 253, pattern: '^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$' } as const;
const port = { type: 'integer', minimum: 1, maximum: 65535 } as const;

export const policySchema = {
  $id: 'https://meshlet.io/schemas/policy/v1alpha1.json',
  type: 'object',
  required: ['apiVersion', 'kind', 'spec'],
  additionalProperties: false,
  properties: {
    apiVersion: { const: POLICY_API_VERSION },
    kind: { const: POLICY_KIND },
    metadata: {
      type: 'object',
      additionalProperties: false,
      properties: { name: { type: 'string', minLength: 1 }, namespace: dnsLabel },
    },
    spec: {
      type: 'object',
      required: ['servers'],
      additionalProperties: false,
      properties: {
        servers: { type: 'array', minItems: 1, maxItems: POLICY_LIMITS.maxServers, items: { $ref: '#/$defs/server' } },
      },
    },
  },
  $defs: {
    server: {
      type: 'object',
      required: ['name', 'selector', 'ports', 'routes'],
      additionalProperties: false,
      properties: {
        name: dnsLabel,
        selector: {
          type: 'object',
          minProperties: 1,
          additionalProperties: false,
          properties: {
            serviceAccount: { type: 'string', minLength: 1, maxLength: 253 },
            matchLabels: { type: 'object', minProperties: 1, additionalProperties: { type: 'string' } },
          },
        },
        default: { enum: DEFAULT_POLICIES },
        mode: { enum: ['enforce', 'audit'] },
        pathMatching: { enum: PATH_MATCHING_MODES },
        ports: {
          type: 'array',
          minItems: 1,
          maxItems: POLICY_LIMITS.maxPortsPerServer,
          items: {
            type: 'object',
            required: ['port', 'protocol'],
            additionalProperties: false,
            properties: { port, protocol: { enum: PORT_PROTOCOLS }, name: { type: 'string', minLength: 1 } },
          },
        },
        routes: { type: 'array', maxItems: POLICY_LIMITS.maxRoutesPerServer, items: { $ref: '#/$defs/route' } },
      },
    },
    route: {
      type: 'object',
      required: ['name', 'callers'],
      additionalProperties: false,
      properties: {
        name: routeName,
        port,
        methods: { type: 'array', minItems: 1, maxItems: POLICY_LIMITS.maxMethodsPerRoute, items: { type: 'string', pattern: '^[A-Z]+$', maxLength: 32 } },
        path: {
          type: 'object',
          minProperties: 1,
          additionalProperties: false,
          properties: {
            exact: { type: 'string', minLength: 1, maxLength: MAX_PATH_LENGTH },
            prefix: { type: 'string', minLength: 1, maxLength: MAX_PATH_LENGTH },
            pattern: { type: 'string', minLength: 1, maxLength: MAX_PATH_LENGTH },
          },
        },
        grpc: {
          type: 'object',
          required: ['service'],
          additionalProperties: false,
          properties: {
            service: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z_][A-Za-z0-9_]*)*$' },
            method: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]*$' },
          },
        },
        callers: { type: 'array', maxItems: POLICY_LIMITS.maxCallersPerRoute, items: { $ref: '#/$defs/caller' } },
      },
    },
    caller: {
      type: 'object',
      minProperties: 1,
      additionalProperties: false,
      properties: {
        spiffeId: { type: 'string' },
        namespace: dnsLabel,
        trustDomain: { type: 'string' },
        anyAuthenticated: { const: true },
        unauthenticated: { const: true },
      },
    },
  },
} as const;

const ajv = new Ajv({ allErrors: true, strict: true });
export const validatePolicySchema = ajv.compile(policySchema);

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
