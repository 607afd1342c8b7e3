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
 *
 * The sidecar does not compile this at run time: generated/validate-policy.js is ajv's
 * standalone code for it (scripts/generate-policy-validator.ts). After changing anything here,
 * or anything it takes from limits.ts, normalize-path.ts or types.ts, run
 * `npm run generate:policy-validator` (test/unit/policy/policy-validator-generated.test.ts
 * fails until the committed file matches). This module must not import ajv.
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
    // At least one of servers and clients: parse.ts says so by name (ajv's anyOf message is unreadable).
    spec: {
      type: 'object',
      additionalProperties: false,
      properties: {
        servers: { type: 'array', minItems: 1, maxItems: POLICY_LIMITS.maxServers, items: { $ref: '#/$defs/server' } },
        clients: { type: 'array', minItems: 1, maxItems: POLICY_LIMITS.maxClients, items: { $ref: '#/$defs/client' } },
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
    client: {
      type: 'object',
      required: ['name', 'selector', 'destinations'],
      additionalProperties: false,
      properties: {
        name: dnsLabel,
        selector: { $ref: '#/$defs/selector' },
        default: { enum: DEFAULT_POLICIES },
        mode: { enum: ['enforce', 'audit'] },
        destinations: { type: 'array', maxItems: POLICY_LIMITS.maxDestinationsPerClient, items: { $ref: '#/$defs/destination' } },
      },
    },
    // "Exactly one kind" (spiffeId, namespace, trustDomain, anyAuthenticated, service, host, cidr)
    // is a semantic check (POLICY_BAD_DESTINATION), for the same reason as callers.
    destination: {
      type: 'object',
      required: ['name'],
      additionalProperties: false,
      properties: {
        name: routeName,
        ports: { type: 'array', minItems: 1, maxItems: POLICY_LIMITS.maxPortsPerDestination, items: port },
        spiffeId: { type: 'string' },
        namespace: dnsLabel,
        trustDomain: { type: 'string' },
        anyAuthenticated: { const: true },
        service: dnsLabel,
        host: { type: 'string', minLength: 1, maxLength: 253 },
        cidr: { type: 'string', minLength: 1, maxLength: 64 },
      },
    },
    selector: {
      type: 'object',
      minProperties: 1,
      additionalProperties: false,
      properties: {
        serviceAccount: { type: 'string', minLength: 1, maxLength: 253 },
        matchLabels: { type: 'object', minProperties: 1, additionalProperties: { type: 'string' } },
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
