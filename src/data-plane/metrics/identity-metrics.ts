import { Counter, Gauge, type Registry } from 'prom-client';
import type { IdentitySnapshot, SvidSource } from '../identity/svid.ts';

/**
 * meshlet_identity_* of the sidecar: when its SVID expires, how often it rotated, when
 * rotation last failed, and which identity it holds. The expiry timestamp is the number to
 * alert on (`meshlet_identity_cert_expiration_timestamp_seconds - time() < 3600`): expired
 * certificates are one of the commonest mesh outages.
 */
export class IdentityMetrics {
  readonly expiration: Gauge;
  readonly rotations: Counter;
  readonly rotationFailures: Counter;
  readonly lastRotationFailure: Gauge;
  readonly info: Gauge<'spiffe_id' | 'source'>;
  #current: IdentitySnapshot | undefined;
  #source: SvidSource | undefined;
  #detach: (() => void) | undefined;

  constructor(registry: Registry) {
    // Registered first, so its collect() brings every identity metric up to date before the
    // others of the same scrape are read. Sources do not all announce their FIRST snapshot
    // through onUpdate (start() resolves with it), so a scrape also looks at current().
    const follower = this;
    this.expiration = new Gauge({
      name: 'meshlet_identity_cert_expiration_timestamp_seconds',
      help: 'Unix time at which the current X.509-SVID expires (0 before one is loaded).',
      registers: [registry],
      collect() {
        const source = follower.#source;
        const current = source?.current();
        if (source !== undefined && current !== undefined) follower.#loaded(current, source.kind);
      },
    });
    this.rotations = new Counter({ name: 'meshlet_identity_rotations_total', help: 'Times a new X.509-SVID replaced the current one.', registers: [registry] });
    this.rotationFailures = new Counter({ name: 'meshlet_identity_rotation_failures_total', help: 'Failed attempts to fetch or renew the X.509-SVID (the current one stays in use).', registers: [registry] });
    this.lastRotationFailure = new Gauge({ name: 'meshlet_identity_last_rotation_failure_timestamp_seconds', help: 'Unix time of the last failed fetch or renewal of the X.509-SVID (0 if none).', registers: [registry] });
    this.info = new Gauge({ name: 'meshlet_identity_info', help: 'The identity in use: 1 for its SPIFFE ID and identity source kind.', labelNames: ['spiffe_id', 'source'], registers: [registry] });
  }

  /**
   * Follows `source`: its current snapshot now (if any), every update, every error, and its
   * current() at every scrape — so following before start() is fine. The first snapshot is
   * not a rotation; a later one with a different certificate is. Returns detach.
   */
  follow(source: SvidSource): () => void {
    this.#detach?.();
    this.#source = source;
    const existing = source.current();
    if (existing !== undefined) this.#loaded(existing, source.kind);
    const offUpdate = source.onUpdate((s) => this.#loaded(s, source.kind));
    const offError = source.onError(() => this.rotationFailed());
    this.#detach = () => {
      offUpdate();
      offError();
      if (this.#source === source) this.#source = undefined;
    };
    return this.#detach;
  }

  rotationFailed(now = Date.now()): void {
    this.rotationFailures.inc();
    this.lastRotationFailure.set(now / 1000);
  }

  #loaded(snapshot: IdentitySnapshot, source: string): void {
    const previous = this.#current;
    if (previous !== undefined && previous.svid.certChainPem === snapshot.svid.certChainPem) return;
    if (previous !== undefined) this.rotations.inc();
    this.#current = snapshot;
    this.expiration.set(snapshot.svid.notAfter.getTime() / 1000);
    this.info.reset();
    this.info.set({ spiffe_id: snapshot.svid.spiffeId.id, source }, 1);
  }
}
