import { MeshletError } from '../../common/errors/meshlet-error.ts';
import type { PolicyError } from './types.ts';

/** A policy document that failed validation; `errors` holds every problem with its location. */
export class PolicyInvalidError extends MeshletError {
  readonly errors: readonly PolicyError[];
  constructor(source: string, errors: readonly PolicyError[]) {
    super('POLICY_INVALID', `policy ${source} is invalid: ${errors.length} error(s); first: ${errors[0]?.message ?? 'unknown'}`);
    this.errors = errors;
  }
}

/** A bad policy setting of the sidecar or injector (e.g. MESHLET_DEFAULT_POLICY). */
export class PolicySettingError extends MeshletError {
  constructor(message: string) {
    super('POLICY_BAD_SETTING', message);
  }
}
