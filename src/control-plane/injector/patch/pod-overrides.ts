import { FieldError } from '../../../common/config/env.ts';
import type { ClientMeshDefault, DefaultPolicy } from '../../../data-plane/policy/types.ts';
import { ANNOTATIONS, type PodAnnotations } from './annotations.ts';
import { PodRefusedError } from './errors.ts';
import { DEFAULT_POLICY_CONFIGMAP } from './pod-layout.ts';

/** Strictest first: a pod may always ask for a default at least as strict as the mesh's. */
const POLICY_STRICTNESS: Readonly<Record<DefaultPolicy, number>> = { deny: 2, 'all-authenticated': 1, audit: 0 };
/** The same for the client side: `allow` decides nothing at all. */
const CLIENT_STRICTNESS: Readonly<Record<ClientMeshDefault, number>> = { deny: 3, 'all-authenticated': 2, audit: 1, allow: 0 };

/** The mesh settings a weakening is measured against. */
interface MeshDefaults {
  readonly defaultPolicy: DefaultPolicy;
  readonly defaultClientPolicy: ClientMeshDefault;
}

/** What a weakening annotation opens on this pod, or undefined when it weakens nothing here. */
type Opens = (parsed: PodAnnotations, settings: MeshDefaults) => string | undefined;

/**
 * The pod annotations that weaken what the mesh enforces for the pod (docs/injector.md,
 * "Annotations that weaken enforcement"), each with what it opens — declared here once: the
 * names MESHLET_INJECTOR_POD_OVERRIDES accepts, `all`, and the check are all built from it.
 * The mesh setting says which of them pods may set; a pod carrying any other is refused
 * (INJECTOR_OVERRIDE_FORBIDDEN) rather than injected with the annotation ignored, so its
 * author learns at `kubectl apply` why the pod does not get what it asked for.
 */
/** What serving ports as opaque TCP opens: policy there sees callers only. */
function opaquePolicy(ports: readonly number[]): string | undefined {
  return ports.length > 0 ? `policy on port(s) ${ports.join(', ')} would match callers only, never methods or paths` : undefined;
}

const WEAKENINGS = {
  [ANNOTATIONS.skipInboundPorts]: (p) => (p.skipInboundPorts.length > 0 ? `callers would reach app port(s) ${p.skipInboundPorts.join(', ')} without mTLS or policy` : undefined),
  [ANNOTATIONS.skipOutboundPorts]: (p) => (p.skipOutboundPorts.length > 0 ? `the app would reach destination port(s) ${p.skipOutboundPorts.join(', ')} without the sidecar` : undefined),
  [ANNOTATIONS.skipOutboundCidrs]: (p) => (p.skipOutboundCidrs.length > 0 ? `the app would reach ${p.skipOutboundCidrs.join(', ')} without the sidecar` : undefined),
  [ANNOTATIONS.permissivePorts]: (p) => (p.permissivePorts.length > 0 ? `port(s) ${p.permissivePorts.join(', ')} would accept plaintext callers without an identity` : undefined),
  [ANNOTATIONS.opaquePorts]: (p) => opaquePolicy(p.opaquePorts),
  [ANNOTATIONS.portProtocols]: (p) => opaquePolicy([...p.portProtocols].filter(([, proto]) => proto === 'tcp' || proto === 'tls' || proto === 'server-first').map(([port]) => port)),
  [ANNOTATIONS.defaultPolicy]: (p, s) =>
    p.defaultPolicy !== undefined && POLICY_STRICTNESS[p.defaultPolicy] < POLICY_STRICTNESS[s.defaultPolicy]
      ? `the default policy "${p.defaultPolicy}" is weaker than the mesh default "${s.defaultPolicy}"`
      : undefined,
  [ANNOTATIONS.defaultClientPolicy]: (p, s) =>
    p.defaultClientPolicy !== undefined && CLIENT_STRICTNESS[p.defaultClientPolicy] < CLIENT_STRICTNESS[s.defaultClientPolicy]
      ? `the client default "${p.defaultClientPolicy}" is weaker than the mesh client default "${s.defaultClientPolicy}"`
      : undefined,
  [ANNOTATIONS.policyConfigMap]: (p) =>
    p.policyConfigMap !== undefined && p.policyConfigMap !== DEFAULT_POLICY_CONFIGMAP
      ? `the sidecar would take its policy from ConfigMap ${p.policyConfigMap} instead of ${DEFAULT_POLICY_CONFIGMAP}, which /validate never checks unless it is labelled meshlet.io/policy: "true"`
      : undefined,
} as const satisfies Partial<Record<(typeof ANNOTATIONS)[keyof typeof ANNOTATIONS], Opens>>;

export type WeakeningAnnotation = keyof typeof WEAKENINGS;

/** The names of WEAKENINGS, in its order (docs/injector.md's). */
export const WEAKENING_ANNOTATIONS: readonly WeakeningAnnotation[] = Object.freeze(Object.keys(WEAKENINGS) as WeakeningAnnotation[]);

/** MESHLET_INJECTOR_POD_OVERRIDES: `all` (default), `none`, or a comma-separated list of WEAKENING_ANNOTATIONS. */
export function parsePodOverrides(raw: string): readonly WeakeningAnnotation[] {
  const items = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (items.length === 1 && items[0] === 'all') return [...WEAKENING_ANNOTATIONS];
  if (items.length === 1 && items[0] === 'none') return [];
  const bad = items.filter((i) => !(WEAKENING_ANNOTATIONS as readonly string[]).includes(i));
  if (bad.length > 0 || items.length === 0) {
    throw new FieldError(`must be all, none, or a comma-separated list of ${WEAKENING_ANNOTATIONS.join(', ')}${bad.length > 0 ? ` (not one of them: ${bad.join(', ')})` : ''}`);
  }
  return [...new Set(items as WeakeningAnnotation[])];
}

/** How the setting reads back in a refusal: `none` or the list. */
export function formatPodOverrides(allowed: readonly WeakeningAnnotation[]): string {
  if (allowed.length === WEAKENING_ANNOTATIONS.length) return 'all';
  return allowed.length === 0 ? 'none' : allowed.join(',');
}

/**
 * Refuses a pod whose annotations weaken enforcement beyond what the mesh allows. An annotation
 * that weakens nothing (an empty list, `default-policy` at least as strict as the mesh default,
 * `policy-configmap` naming the default ConfigMap) is always accepted.
 */
export function checkPodOverrides(
  raw: Readonly<Record<string, unknown>> | undefined,
  parsed: PodAnnotations,
  settings: { allowedPodOverrides: readonly WeakeningAnnotation[] } & MeshDefaults,
): void {
  const allowed = new Set(settings.allowedPodOverrides);
  if (allowed.size === WEAKENING_ANNOTATIONS.length) return;
  const problems: string[] = [];
  for (const key of WEAKENING_ANNOTATIONS) {
    const what = WEAKENINGS[key](parsed, settings);
    if (what === undefined || allowed.has(key)) continue;
    problems.push(`annotation ${key}=${JSON.stringify(raw?.[key])} is not allowed on pods in this mesh (MESHLET_INJECTOR_POD_OVERRIDES=${formatPodOverrides(settings.allowedPodOverrides)}): ${what}; remove it, or ask the mesh operator`);
  }
  if (problems.length > 0) throw new PodRefusedError('INJECTOR_OVERRIDE_FORBIDDEN', problems);
}
