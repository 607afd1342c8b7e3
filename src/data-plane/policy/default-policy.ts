import { PolicySettingError } from './errors.ts';
import { DEFAULT_POLICIES, type ClientMeshDefault, type DefaultPolicy } from './types.ts';

/** The mesh default when the setting is absent: deny, so a missing policy never opens a service. */
export const MESH_DEFAULT_POLICY: DefaultPolicy = 'deny';

/**
 * The mesh client default when the setting is absent: allow. Outbound stays unrestricted by
 * policy for a workload no client selects: egress deny mesh-wide before anything declares its
 * destinations would break every injected app (docs/policy.md "Clients").
 */
export const MESH_CLIENT_DEFAULT_POLICY: ClientMeshDefault = 'allow';

/** Reads the mesh-level default (env MESHLET_DEFAULT_POLICY), refusing anything unknown by name. */
export function parseDefaultPolicy(value: string | undefined, name = 'MESHLET_DEFAULT_POLICY'): DefaultPolicy {
  if (value === undefined || value === '') return MESH_DEFAULT_POLICY;
  if ((DEFAULT_POLICIES as readonly string[]).includes(value)) return value as DefaultPolicy;
  throw new PolicySettingError(`${name} must be one of ${DEFAULT_POLICIES.join(', ')} (got ${JSON.stringify(value)})`);
}
