import { FieldError } from '../../src/config/env.ts';
import type { DefaultPolicy } from '../../src/policy/types.ts';
import { ANNOTATIONS, type PodAnnotations } from './annotations.ts';
import { PodRefusedError } from './errors.ts';
import { DEFAULT_POLICY_CONFIGMAP } from './pod-layout.ts';

/**
 * The pod annotations that weaken what the mesh enforces for the pod (docs/injector.md,
 * "Annotations that weaken enforcement"), each with what it opens. The mesh setting
 * MESHLET_INJECTOR_POD_OVERRIDES says which of them pods may set; a pod carrying any other is
 * refused (INJECTOR_OVERRIDE_FORBIDDEN) rather than injected with the annotation ignored, so
 * its author learns at `kubectl apply` why the pod does not get what it asked for.
 */
export const WEAKENING_ANNOTATIONS = [
  ANNOTATIONS.skipInboundPorts,
  ANNOTATIONS.skipOutboundPorts,
  ANNOTATIONS.skipOutboundCidrs,
  ANNOTATIONS.permissivePorts,
  ANNOTATIONS.opaquePorts,
  ANNOTATIONS.defaultPolicy,
  ANNOTATIONS.policyConfigMap,
] as const;

export type WeakeningAnnotation = (typeof WEAKENING_ANNOTATIONS)[number];

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

/** Strictest first: a pod may always ask for a default at least as strict as the mesh's. */
const POLICY_STRICTNESS: Readonly<Record<DefaultPolicy, number>> = { deny: 2, 'all-authenticated': 1, audit: 0 };

/**
 * Refuses a pod whose annotations weaken enforcement beyond what the mesh allows. An annotation
 * that weakens nothing (an empty list, `default-policy` at least as strict as the mesh default,
 * `policy-configmap` naming the default ConfigMap) is always accepted.
 */
export function checkPodOverrides(
  raw: Readonly<Record<string, unknown>> | undefined,
  parsed: PodAnnotations,
  settings: { allowedPodOverrides: readonly WeakeningAnnotation[]; defaultPolicy: DefaultPolicy },
): void {
  const allowed = new Set(settings.allowedPodOverrides);
  if (allowed.size === WEAKENING_ANNOTATIONS.length) return;
  const opens: Partial<Record<WeakeningAnnotation, string | undefined>> = {
    [ANNOTATIONS.skipInboundPorts]: parsed.skipInboundPorts.length > 0 ? `callers would reach app port(s) ${parsed.skipInboundPorts.join(', ')} without mTLS or policy` : undefined,
    [ANNOTATIONS.skipOutboundPorts]: parsed.skipOutboundPorts.length > 0 ? `the app would reach destination port(s) ${parsed.skipOutboundPorts.join(', ')} without the sidecar` : undefined,
    [ANNOTATIONS.skipOutboundCidrs]: parsed.skipOutboundCidrs.length > 0 ? `the app would reach ${parsed.skipOutboundCidrs.join(', ')} without the sidecar` : undefined,
    [ANNOTATIONS.permissivePorts]: parsed.permissivePorts.length > 0 ? `port(s) ${parsed.permissivePorts.join(', ')} would accept plaintext callers without an identity` : undefined,
    [ANNOTATIONS.opaquePorts]: parsed.opaquePorts.length > 0 ? `policy on port(s) ${parsed.opaquePorts.join(', ')} would match callers only, never methods or paths` : undefined,
    [ANNOTATIONS.defaultPolicy]:
      parsed.defaultPolicy !== undefined && POLICY_STRICTNESS[parsed.defaultPolicy] < POLICY_STRICTNESS[settings.defaultPolicy]
        ? `the default policy "${parsed.defaultPolicy}" is weaker than the mesh default "${settings.defaultPolicy}"`
        : undefined,
    [ANNOTATIONS.policyConfigMap]:
      parsed.policyConfigMap !== undefined && parsed.policyConfigMap !== DEFAULT_POLICY_CONFIGMAP
        ? `the sidecar would take its policy from ConfigMap ${parsed.policyConfigMap} instead of ${DEFAULT_POLICY_CONFIGMAP}, which /validate never checks unless it is labelled meshlet.io/policy: "true"`
        : undefined,
  };
  const problems: string[] = [];
  for (const key of WEAKENING_ANNOTATIONS) {
    const what = opens[key];
    if (what === undefined || allowed.has(key)) continue;
    problems.push(`annotation ${key}=${JSON.stringify(raw?.[key])} is not allowed on pods in this mesh (MESHLET_INJECTOR_POD_OVERRIDES=${formatPodOverrides(settings.allowedPodOverrides)}): ${what}; remove it, or ask the mesh operator`);
  }
  if (problems.length > 0) throw new PodRefusedError('INJECTOR_OVERRIDE_FORBIDDEN', problems);
}
