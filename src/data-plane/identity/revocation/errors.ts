import { MeshletError } from '../../../common/errors/meshlet-error.ts';

/**
 * A revocation list that cannot be used (docs/revocation.md "The list"). The last good list
 * stays in force; the code is the metric label and the message names the exact place.
 *  - REVOCATION_LIST_TOO_LARGE: more than MAX_REVOCATION_LIST_BYTES or MAX_REVOKED_ENTRIES;
 *  - REVOCATION_LIST_INVALID: not JSON, or not a RevocationList (wrong field, type, ID, date, duplicate);
 *  - REVOCATION_LIST_UNREADABLE: the file exists but cannot be read (permissions, a directory);
 *  - REVOCATION_LIST_MISSING: the file went away after a list was loaded.
 */
export type RevocationListErrorCode = 'REVOCATION_LIST_TOO_LARGE' | 'REVOCATION_LIST_INVALID' | 'REVOCATION_LIST_UNREADABLE' | 'REVOCATION_LIST_MISSING';

export const REVOCATION_LIST_ERROR_CODES: readonly RevocationListErrorCode[] = ['REVOCATION_LIST_TOO_LARGE', 'REVOCATION_LIST_INVALID', 'REVOCATION_LIST_UNREADABLE', 'REVOCATION_LIST_MISSING'];

export class RevocationListError extends MeshletError {
  declare readonly code: RevocationListErrorCode;
  constructor(code: RevocationListErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
  }
}
