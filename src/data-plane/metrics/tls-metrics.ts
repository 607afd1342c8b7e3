import { Counter, type Registry } from 'prom-client';
import { handshakeFailureReason, type HandshakeFailureReason } from '../tls/handshake-failure-reason.ts';
import { DIRECTIONS, type Direction } from './label-values.ts';

/** Every reason handshakeFailureReason() can return, so each series exists (at 0) from the start. */
export const HANDSHAKE_FAILURE_REASONS: readonly HandshakeFailureReason[] = [
  'unknown_ca',
  'expired',
  'bad_san',
  'wrong_identity',
  'plaintext_on_strict',
  'protocol_version',
  'no_client_cert',
  'no_shared_group',
  'revoked',
  'other',
];

/**
 * meshlet_tls_handshake_failures_total{direction, reason}. Failures are the unusual path, so
 * this family uses prom-client's Counter directly; the reason comes from the one classifier
 * in src/data-plane/tls, the same one that words the 502 the app sees.
 */
export class TlsMetrics {
  readonly failures: Counter<'direction' | 'reason'>;

  constructor(registry: Registry) {
    this.failures = new Counter({
      name: 'meshlet_tls_handshake_failures_total',
      help: 'Failed mTLS handshakes (or client SVID checks) by direction and reason: unknown_ca, expired, bad_san, wrong_identity, plaintext_on_strict, protocol_version, no_client_cert, no_shared_group, revoked, other.',
      labelNames: ['direction', 'reason'],
      registers: [registry],
    });
    for (const direction of DIRECTIONS) for (const reason of HANDSHAKE_FAILURE_REASONS) this.failures.inc({ direction, reason }, 0);
  }

  /** Classifies `err` and counts it; returns the reason (for the log line). */
  handshakeFailed(direction: Direction, err: unknown): HandshakeFailureReason {
    const reason = handshakeFailureReason(err);
    this.failures.inc({ direction, reason });
    return reason;
  }
}
