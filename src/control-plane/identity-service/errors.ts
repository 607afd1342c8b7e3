import { status as GrpcStatus } from '@grpc/grpc-js';
import { MeshletError } from '../../common/errors/meshlet-error.ts';

/**
 * The catalog of ways a Certify call can be refused. Each entry has a stable error code
 * (tests and logs match on it), the gRPC status the caller sees, and a `reason` — the
 * bounded label of `meshlet_identity_certificates_refused_total{reason}`. Codes are many
 * (one per failure); reasons are few on purpose, so the metric has a small fixed set of
 * series.
 *
 * Status choice: a bad request shape or a bad CSR is the caller's bug (INVALID_ARGUMENT,
 * do not retry as is); a token that does not prove an identity is UNAUTHENTICATED; a CSR
 * asking for a name the token does not prove, or for a revoked identity, is PERMISSION_DENIED
 * (the sidecar does not retry it as is); a per-identity rate
 * limit is RESOURCE_EXHAUSTED; a token authenticator we cannot reach (API server, JWKS),
 * or too many calls in flight, is UNAVAILABLE, which the client retries with backoff.
 */
export const CERTIFY_REFUSALS = {
  IDENTITY_REQUEST_MALFORMED: { status: GrpcStatus.INVALID_ARGUMENT, reason: 'malformed_request' },
  IDENTITY_TOKEN_TOO_LARGE: { status: GrpcStatus.INVALID_ARGUMENT, reason: 'request_too_large' },
  IDENTITY_CSR_TOO_LARGE: { status: GrpcStatus.INVALID_ARGUMENT, reason: 'request_too_large' },
  IDENTITY_CSR_MALFORMED: { status: GrpcStatus.INVALID_ARGUMENT, reason: 'csr_malformed' },
  IDENTITY_CSR_BAD_SIGNATURE: { status: GrpcStatus.INVALID_ARGUMENT, reason: 'csr_bad_signature' },
  IDENTITY_CSR_KEY_NOT_P256: { status: GrpcStatus.INVALID_ARGUMENT, reason: 'csr_key_type' },
  IDENTITY_CSR_FORBIDDEN_SAN: { status: GrpcStatus.PERMISSION_DENIED, reason: 'csr_forbidden_name' },
  IDENTITY_CSR_FORBIDDEN_SUBJECT: { status: GrpcStatus.PERMISSION_DENIED, reason: 'csr_forbidden_name' },
  IDENTITY_CSR_REQUESTS_CA: { status: GrpcStatus.PERMISSION_DENIED, reason: 'csr_forbidden_name' },
  // The token proves an identity the revocation list names (MESHLET_IDENTITY_REVOCATION_LIST, docs/revocation.md).
  IDENTITY_REVOKED: { status: GrpcStatus.PERMISSION_DENIED, reason: 'revoked' },
  IDENTITY_TOKEN_INVALID: { status: GrpcStatus.UNAUTHENTICATED, reason: 'token_invalid' },
  IDENTITY_TOKEN_EXPIRED: { status: GrpcStatus.UNAUTHENTICATED, reason: 'token_expired' },
  IDENTITY_TOKEN_NOT_YET_VALID: { status: GrpcStatus.UNAUTHENTICATED, reason: 'token_invalid' },
  IDENTITY_TOKEN_WRONG_AUDIENCE: { status: GrpcStatus.UNAUTHENTICATED, reason: 'token_wrong_audience' },
  IDENTITY_TOKEN_WRONG_ISSUER: { status: GrpcStatus.UNAUTHENTICATED, reason: 'token_wrong_issuer' },
  IDENTITY_TOKEN_NOT_SERVICE_ACCOUNT: { status: GrpcStatus.UNAUTHENTICATED, reason: 'token_invalid' },
  IDENTITY_TOKEN_IDENTITY_MISMATCH: { status: GrpcStatus.UNAUTHENTICATED, reason: 'token_invalid' },
  IDENTITY_AUTHENTICATOR_UNAVAILABLE: { status: GrpcStatus.UNAVAILABLE, reason: 'authenticator_unavailable' },
  IDENTITY_RATE_LIMITED: { status: GrpcStatus.RESOURCE_EXHAUSTED, reason: 'rate_limited' },
  IDENTITY_OVERLOADED: { status: GrpcStatus.UNAVAILABLE, reason: 'overloaded' },
  IDENTITY_SIGNING_FAILED: { status: GrpcStatus.INTERNAL, reason: 'internal' },
} as const;

export type CertifyErrorCode = keyof typeof CERTIFY_REFUSALS;
export type RefusalReason = (typeof CERTIFY_REFUSALS)[CertifyErrorCode]['reason'];

/** Every refusal reason, for pre-initialising metric series at zero. */
export const REFUSAL_REASONS: readonly RefusalReason[] = [...new Set(Object.values(CERTIFY_REFUSALS).map((r) => r.reason))];

/** A refused Certify call. The message goes to the caller as the gRPC status details. */
export class CertifyError extends MeshletError {
  declare readonly code: CertifyErrorCode;
  readonly grpcStatus: GrpcStatus;
  readonly reason: RefusalReason;

  constructor(code: CertifyErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
    this.grpcStatus = CERTIFY_REFUSALS[code].status;
    this.reason = CERTIFY_REFUSALS[code].reason;
  }
}
