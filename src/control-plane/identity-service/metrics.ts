import { Counter, Gauge, type Registry } from 'prom-client';
import { WATCH_RESTART_REASONS, WATCHED_RESOURCES, type ClusterWatchMetrics } from '../discovery/cluster-watch.ts';
import { DISCOVERY_REFUSAL_REASONS, type DiscoveryMetrics } from '../discovery/discovery-service.ts';
import { RESOLUTION_KINDS } from '../discovery/mesh-view.ts';
import { REFUSAL_REASONS, type RefusalReason } from './errors.ts';

/**
 * What the identity service counts. A two-method interface so the service does not depend
 * on prom-client (tests pass a recorder; the process passes the prom-client one below).
 */
export interface CertifyMetrics {
  onIssued(): void;
  onRefused(reason: RefusalReason): void;
}

export const noCertifyMetrics: CertifyMetrics = Object.freeze({ onIssued() {}, onRefused() {} });

/** The prom-client implementation, registered on `registry`. */
export function promCertifyMetrics(registry: Registry): CertifyMetrics {
  const issued = new Counter({
    name: 'meshlet_identity_certificates_issued_total',
    help: 'X.509-SVIDs the identity service issued.',
    registers: [registry],
  });
  const refused = new Counter({
    name: 'meshlet_identity_certificates_refused_total',
    help: 'Certify requests the identity service refused, by reason.',
    labelNames: ['reason'],
    registers: [registry],
  });
  // Every reason starts at 0, so a rate() over a reason that has never happened is 0, not absent.
  for (const reason of REFUSAL_REASONS) refused.labels(reason).inc(0);
  return {
    onIssued: () => issued.inc(),
    onRefused: (reason) => refused.labels(reason).inc(),
  };
}

/**
 * Discovery (docs/discovery.md): the watched objects, watch restarts, Resolve answers by kind
 * and refusals by reason. Registered only when MESHLET_DISCOVERY=on. Every label value is from
 * a fixed list and starts at 0.
 */
export function promDiscoveryMetrics(registry: Registry): DiscoveryMetrics & ClusterWatchMetrics {
  const objects = new Gauge({
    name: 'meshlet_discovery_objects',
    help: 'Objects the discovery watch holds, by resource (pods, services, endpointslices).',
    labelNames: ['resource'],
    registers: [registry],
  });
  const restarts = new Counter({
    name: 'meshlet_discovery_watch_restarts_total',
    help: 'Discovery watches started again, by resource and reason (closed: the server ended it; expired: 410 Gone, re-listed; error: failed, re-listed after a backoff).',
    labelNames: ['resource', 'reason'],
    registers: [registry],
  });
  const resolves = new Counter({
    name: 'meshlet_discovery_resolves_total',
    help: 'Resolve answers, by kind (meshed, unmeshed, mixed, external, unknown).',
    labelNames: ['kind'],
    registers: [registry],
  });
  const refused = new Counter({
    name: 'meshlet_discovery_resolves_refused_total',
    help: 'Resolve calls refused, by reason.',
    labelNames: ['reason'],
    registers: [registry],
  });
  for (const r of WATCHED_RESOURCES) {
    objects.labels(r).set(0);
    for (const reason of WATCH_RESTART_REASONS) restarts.labels(r, reason).inc(0);
  }
  for (const k of RESOLUTION_KINDS) resolves.labels(k).inc(0);
  for (const reason of DISCOVERY_REFUSAL_REASONS) refused.labels(reason).inc(0);
  return {
    objects: (resource, count) => objects.labels(resource).set(count),
    restart: (resource, reason) => restarts.labels(resource, reason).inc(),
    onResolved: (kind) => resolves.labels(kind).inc(),
    onRefused: (reason) => refused.labels(reason).inc(),
  };
}
