// The policy library's public surface: what the sidecar, the CLI, the injector and the bench use.
// Policy returns decisions only; what a denied client sees is made in src/data-plane/proxy/http/errors.ts.
export { parsePolicy, parsePolicyManifest, policyKeysOf, formatPolicyError, type ManifestPolicy } from './parse.ts';
export { parsePolicyOffThread, OFF_THREAD_PARSE_DEFAULTS, type OffThreadParseOptions, type OffThreadParseResult } from './parse-off-thread.ts';
export { POLICY_LIMITS } from './limits.ts';
export { compilePolicy, selectServer, type CompiledPolicy, type CompiledRoute, type CompileOptions } from './compile.ts';
export { decide, matchRoute } from './decide.ts';
export { compileClient, selectClient, describeDestination, type CompiledClient, type ClientDecision, type ClientDecisionCode, type DestinationFacts } from './client-policy.ts';
export { foldPath } from './route-match.ts';
export { normalizePath, MAX_PATH_LENGTH, type NormalizedPath, type PathRefusalCode } from './normalize-path.ts';
export { PolicyStore, DEFAULT_POLICY_KEY, type ReloadEvent, type ReloadResult, type PolicyStoreOptions } from './store.ts';
export { PolicyMetrics } from './metrics.ts';
export { parseDefaultPolicy, MESH_DEFAULT_POLICY } from './default-policy.ts';
export { PolicyInvalidError, PolicySettingError } from './errors.ts';
export { exactId, namespace, trustDomain, anyAuthenticated, unauthenticated, oneOf, type CallerMatcher } from './callers.ts';
export * from './types.ts';
export { DEFAULT_TRUST_DOMAIN } from '../../common/identity/spiffe-id.ts';
