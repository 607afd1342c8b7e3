import { MeshletError } from '../../common/errors/meshlet-error.ts';

/**
 * A peer failed mesh authentication: no certificate, a chain that does not verify against
 * the bundle of the peer's own trust domain, or a verified identity that is not the one we
 * expected. SVID verification failures keep their SvidVerifyError code (SVID_EXPIRED,
 * SVID_UNKNOWN_AUTHORITY, …) so logs and metrics see the precise reason; the original error
 * is the `cause`.
 */
export class TlsPeerError extends MeshletError {
  constructor(code: TlsPeerErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
  }
}

/**
 * Our own codes, plus any SvidVerifyError code passed through unchanged.
 * TLS_PEER_SESSION_MISMATCH: a resumed session's server certificate is not the one verified
 * when the session was made (docs/tls.md "Session resumption").
 * TLS_PEER_REVOKED: the peer's verified SPIFFE ID is on the revocation list (docs/revocation.md).
 */
export type TlsPeerErrorCode = 'TLS_PEER_NO_CERTIFICATE' | 'TLS_PEER_WRONG_IDENTITY' | 'TLS_PEER_UNTRUSTED_DOMAIN' | 'TLS_PEER_SESSION_MISMATCH' | 'TLS_PEER_REVOKED' | (string & {});

/**
 * The TLS layer was set up wrongly by its caller (a programming or configuration error).
 * TLS_BAD_KEY_EXCHANGE: MeshTlsOptions.keyExchange is not one of KEY_EXCHANGE_MODES;
 * TLS_KEY_EXCHANGE_UNSUPPORTED: this Node's OpenSSL lacks a group the setting needs
 * (docs/tls.md "Key exchange").
 */
export class TlsSetupError extends MeshletError {
  constructor(code: TlsSetupErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
  }
}

export type TlsSetupErrorCode = 'TLS_SOURCE_NOT_STARTED' | 'TLS_BAD_EXPECTED_PEER' | 'TLS_CLOSED' | 'TLS_BAD_TIMEOUT' | 'TLS_BAD_KEY_EXCHANGE' | 'TLS_KEY_EXCHANGE_UNSUPPORTED';
