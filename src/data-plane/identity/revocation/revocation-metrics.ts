import { Counter, Gauge, type Registry } from 'prom-client';
import { REVOCATION_LIST_ERROR_CODES } from './errors.ts';
import type { RevocationReload } from './revocation-list-file.ts';

/**
 * The revocation list's metrics (docs/revocation.md "Metrics"), in the sidecar and in the
 * identity service alike; registered only when a list is configured, so a process without one
 * has none of these series. Every label value comes from a fixed list and starts at 0.
 */
export class RevocationMetrics {
  readonly reloads: Counter<'result'>;
  readonly rejected: Counter<'code'>;
  readonly revoked: Gauge;
  readonly lastSuccess: Gauge;

  constructor(registry: Registry) {
    this.reloads = new Counter({
      name: 'meshlet_revocation_reloads_total',
      help: 'Revocation list loads by result: ok (a new list in force), absent (no file at start: nobody revoked), rejected (malformed, too large, unreadable or gone: the last good list stays).',
      labelNames: ['result'],
      registers: [registry],
    });
    for (const result of ['ok', 'absent', 'rejected']) this.reloads.inc({ result }, 0);
    this.rejected = new Counter({
      name: 'meshlet_revocation_rejected_total',
      help: 'Revocation lists not applied (the last good one stays), by code: REVOCATION_LIST_INVALID, REVOCATION_LIST_TOO_LARGE, REVOCATION_LIST_UNREADABLE, REVOCATION_LIST_MISSING.',
      labelNames: ['code'],
      registers: [registry],
    });
    for (const code of REVOCATION_LIST_ERROR_CODES) this.rejected.inc({ code }, 0);
    this.revoked = new Gauge({
      name: 'meshlet_revocation_revoked_identities',
      help: 'SPIFFE IDs the revocation list in force revokes.',
      registers: [registry],
    });
    this.lastSuccess = new Gauge({
      name: 'meshlet_revocation_last_reload_success_timestamp_seconds',
      help: 'Unix time the revocation list in force was loaded (or found absent at start).',
      registers: [registry],
    });
  }

  recordReload(reload: RevocationReload): void {
    this.reloads.inc({ result: reload.result });
    if (reload.error !== undefined) this.rejected.inc({ code: reload.error.code });
    else this.lastSuccess.set(Date.now() / 1000);
    this.revoked.set(reload.current.size);
  }
}

/** meshlet_revoked_connections_closed_total{direction}: the sidecar's open connections closed because their peer was revoked. */
export class RevokedConnectionMetrics {
  readonly closed: Counter<'direction'>;

  constructor(registry: Registry) {
    this.closed = new Counter({
      name: 'meshlet_revoked_connections_closed_total',
      help: 'Open mTLS connections closed because the revocation list came to name their peer: inbound (a revoked caller), outbound (a revoked server).',
      labelNames: ['direction'],
      registers: [registry],
    });
    for (const direction of ['inbound', 'outbound']) this.closed.inc({ direction }, 0);
  }
}
