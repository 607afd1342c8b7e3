/**
 * Bounded reasons for a failed mesh handshake, for the metrics label and the 502/503 the
 * app sees. Node reports OpenSSL failures with codes (ERR_SSL_* for alerts and protocol
 * errors, bare X509_V_ERR names such as CERT_HAS_EXPIRED for chain checks); meshlet's own
 * checks throw TlsPeerError with TLS_PEER_* or SVID_* codes. Every code maps to one label.
 */
export type HandshakeFailureReason =
  | 'unknown_ca'
  | 'expired'
  | 'bad_san'
  | 'wrong_identity'
  | 'plaintext_on_strict'
  | 'protocol_version'
  | 'no_client_cert'
  | 'no_shared_group'
  | 'revoked'
  | 'other';

const BY_CODE: ReadonlyMap<string, HandshakeFailureReason> = new Map<string, HandshakeFailureReason>([
  // meshlet's checks
  ['TLS_PEER_NO_CERTIFICATE', 'no_client_cert'],
  ['TLS_PEER_WRONG_IDENTITY', 'wrong_identity'],
  ['TLS_PEER_UNTRUSTED_DOMAIN', 'wrong_identity'],
  ['TLS_PEER_SESSION_MISMATCH', 'wrong_identity'],
  // The peer's verified SPIFFE ID is on the revocation list (docs/revocation.md).
  ['TLS_PEER_REVOKED', 'revoked'],
  ['SVID_UNTRUSTED_TRUST_DOMAIN', 'unknown_ca'],
  ['SVID_UNKNOWN_AUTHORITY', 'unknown_ca'],
  ['SVID_BROKEN_CHAIN', 'unknown_ca'],
  ['SVID_SIGNER_NOT_CA', 'unknown_ca'],
  ['SVID_PATH_LEN_EXCEEDED', 'unknown_ca'],
  ['SVID_NO_CERTIFICATE', 'no_client_cert'],
  ['SVID_EXPIRED', 'expired'],
  ['SVID_NOT_YET_VALID', 'expired'],
  ['SVID_NO_URI_SAN', 'bad_san'],
  ['SVID_MULTIPLE_URI_SANS', 'bad_san'],
  ['SVID_BAD_SPIFFE_ID', 'bad_san'],
  ['SVID_NOT_SPIFFE_URI', 'bad_san'],
  ['SVID_ROOT_ID', 'bad_san'],
  ['SVID_EMPTY_SUBJECT_SAN_NOT_CRITICAL', 'bad_san'],
  // OpenSSL chain verification (client side, against the union of bundles)
  ['UNABLE_TO_GET_ISSUER_CERT', 'unknown_ca'],
  ['UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'unknown_ca'],
  ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'unknown_ca'],
  ['SELF_SIGNED_CERT_IN_CHAIN', 'unknown_ca'],
  ['DEPTH_ZERO_SELF_SIGNED_CERT', 'unknown_ca'],
  ['CERT_SIGNATURE_FAILURE', 'unknown_ca'],
  ['CERT_UNTRUSTED', 'unknown_ca'],
  ['CERT_HAS_EXPIRED', 'expired'],
  ['CERT_NOT_YET_VALID', 'expired'],
  ['ERR_TLS_CERT_ALTNAME_INVALID', 'wrong_identity'],
  // TLS alerts and record-layer errors
  ['ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', 'unknown_ca'],
  ['ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE', 'unknown_ca'],
  ['ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED', 'expired'],
  ['ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE', 'no_client_cert'],
  ['ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', 'no_client_cert'],
  ['ERR_SSL_UNSUPPORTED_PROTOCOL', 'protocol_version'],
  ['ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION', 'protocol_version'],
  ['ERR_SSL_NO_PROTOCOLS_AVAILABLE', 'protocol_version'],
  ['ERR_SSL_WRONG_VERSION_NUMBER', 'plaintext_on_strict'],
  ['ERR_SSL_HTTP_REQUEST', 'plaintext_on_strict'],
  ['ERR_SSL_HTTPS_PROXY_REQUEST', 'plaintext_on_strict'],
  ['ERR_SSL_PACKET_LENGTH_TOO_LONG', 'plaintext_on_strict'],
  ['ERR_SSL_RECORD_LENGTH_MISMATCH', 'plaintext_on_strict'],
  ['ERR_SSL_UNKNOWN_PROTOCOL', 'plaintext_on_strict'],
  // No key exchange group in common (MESHLET_TLS_KEY_EXCHANGE, docs/tls.md "Key exchange"): the
  // server knows it exactly; the client only hears a handshake_failure alert, which between
  // sidecars (TLS 1.3 only, the same cipher suites, ECDSA SVIDs) nothing else can cause.
  ['ERR_SSL_NO_SUITABLE_KEY_SHARE', 'no_shared_group'],
  ['ERR_SSL_SSL/TLS_ALERT_HANDSHAKE_FAILURE', 'no_shared_group'],
]);

/** Classifies a handshake failure (a Node/OpenSSL error or a TlsPeerError), following `cause`. */
export function handshakeFailureReason(err: unknown): HandshakeFailureReason {
  // Our errors wrap the verifier's (cause); Node wraps nothing, but an app error might.
  for (let depth = 0; depth < 4 && typeof err === 'object' && err !== null; depth++) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string') {
      const reason = BY_CODE.get(code);
      if (reason !== undefined) return reason;
    }
    err = (err as { cause?: unknown }).cause;
  }
  return 'other';
}
