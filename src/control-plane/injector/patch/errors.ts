import { MeshletError } from '../../../common/errors/meshlet-error.ts';

/**
 * Why the injector refuses a pod. A refusal is the pod author's to fix, so the admission
 * response denies the pod with the message (kubectl prints it); it is never "allowed without
 * mesh", because a typo in an annotation must not quietly produce a pod without mTLS/policy.
 */
export const POD_REFUSAL_CODES = [
  /** A meshlet.io/* annotation has a value the injector cannot use. */
  'INJECTOR_ANNOTATION_INVALID',
  /** The pod already uses a name the injector needs (container, volume, port name). */
  'INJECTOR_NAME_CONFLICT',
  /** An app port collides with a port the sidecar binds. */
  'INJECTOR_PORT_CONFLICT',
  /** An httpGet probe names a port no container of the pod declares. */
  'INJECTOR_PROBE_PORT_UNKNOWN',
  /** The object is not shaped like a Pod (spec.containers missing or not a list). */
  'INJECTOR_POD_MALFORMED',
  /** A container of the pod could leave interception: it runs as the proxy's uid, is privileged, or adds NET_ADMIN. */
  'INJECTOR_INTERCEPTION_ESCAPE',
  /** An annotation that weakens enforcement, which MESHLET_INJECTOR_POD_OVERRIDES does not let pods set. */
  'INJECTOR_OVERRIDE_FORBIDDEN',
] as const;

export type PodRefusalCode = (typeof POD_REFUSAL_CODES)[number];

export class PodRefusedError extends MeshletError {
  declare readonly code: PodRefusalCode;
  /** Every problem found, one line each (all reported at once, like the sidecar's config). */
  readonly problems: readonly string[];

  constructor(code: PodRefusalCode, problems: string[]) {
    super(code, problems.join('; '));
    this.problems = problems;
  }
}

/** A bug or an impossible state inside the injector: handled per the configured failure mode. */
export class InjectorInternalError extends MeshletError {
  constructor(message: string, options?: ErrorOptions) {
    super('INJECTOR_INTERNAL', message, options);
  }
}
