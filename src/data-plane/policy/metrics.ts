import { Counter, Gauge, Registry } from 'prom-client';
import type { ReloadEvent } from './store.ts';
import { CappedLabel, DEFAULT_LABEL_CAP, routeValue } from '../metrics/label-values.ts';
import { CounterVec, type CounterSeries } from '../metrics/series.ts';
import type { ClientDecision } from './client-policy.ts';

/** The `result` of a client decision: meshlet_authz_decisions_total's values. */
export type ClientDecisionResult = 'allow' | 'deny' | 'audit_would_deny';

/**
 * The policy metric family. Label values are bounded: reload results are an enum, the info
 * gauge carries one (hash, version) series at a time, and route names come from the policy.
 */
export class PolicyMetrics {
  readonly reloads: Counter<'result'>;
  readonly lastSuccess: Gauge;
  readonly info: Gauge<'hash' | 'version'>;
  readonly wouldDeny: Counter<'route'>;
  readonly rejected: Counter<'code'>;
  /**
   * meshlet_policy_client_decisions_total{client, destination, result}: every outbound decision
   * of the client side (docs/policy.md "Clients"). Its own family rather than a `direction` label
   * on meshlet_authz_decisions_total, whose `caller` label would always be this workload outbound.
   */
  readonly clientDecisions: CounterVec;
  /** meshlet_policy_connections_closed_total{direction}: open connections an applied policy no longer allowed (DecidedConnections). */
  readonly connectionsClosed: Counter<'direction'>;
  readonly #clientSeries = new Map<string, CounterSeries>();
  readonly #clientLabels = new CappedLabel(DEFAULT_LABEL_CAP);

  constructor(registry: Registry) {
    this.reloads = new Counter({
      name: 'meshlet_policy_reloads_total',
      help: 'Policy reload attempts by result (ok, invalid, unreadable, deleted, unchanged).',
      labelNames: ['result'],
      registers: [registry],
    });
    for (const result of ['ok', 'invalid', 'unreadable', 'deleted', 'unchanged']) this.reloads.inc({ result }, 0);
    this.lastSuccess = new Gauge({
      name: 'meshlet_policy_last_reload_success_timestamp_seconds',
      help: 'Unix time of the last reload that applied a valid policy.',
      registers: [registry],
    });
    this.info = new Gauge({
      name: 'meshlet_policy_info',
      help: 'The policy in force: 1 for its content hash and apiVersion (none/none when no policy is loaded).',
      labelNames: ['hash', 'version'],
      registers: [registry],
    });
    this.info.set({ hash: 'none', version: 'none' }, 1);
    this.rejected = new Counter({
      name: 'meshlet_policy_rejected_total',
      help: 'Policies not applied (the last good one stays), by the code of their first error (POLICY_ALIAS_LIMIT, POLICY_LIMIT, POLICY_TOO_LARGE, POLICY_SCHEMA, …).',
      labelNames: ['code'],
      registers: [registry],
    });
    this.clientDecisions = new CounterVec({
      name: 'meshlet_policy_client_decisions_total',
      help: 'Outbound decisions of the client side of the policy, by client ("none" when the mesh client default decided), destination entry ("unmatched" when a default decided) and result (allow, deny, audit_would_deny).',
      labelNames: ['client', 'destination', 'result'],
      registry,
    });
    this.wouldDeny = new Counter({
      name: 'meshlet_policy_audit_would_deny_total',
      help: 'Requests allowed in audit mode that enforcement would have denied, by route ("unmatched" = a default decided).',
      labelNames: ['route'],
      registers: [registry],
    });
    this.connectionsClosed = new Counter({
      name: 'meshlet_policy_connections_closed_total',
      help: 'Open connections decided once when they opened (opaque TCP, TLS passed through) that a newly applied policy denied and the sidecar closed, by direction.',
      labelNames: ['direction'],
      registers: [registry],
    });
    for (const direction of ['inbound', 'outbound']) this.connectionsClosed.inc({ direction }, 0);
  }

  /**
   * The series a client decision is counted in. The outbound caches it with the verdict (per
   * destination), so a request costs one increment: `clientSeries(d).value++`.
   */
  clientSeries(d: ClientDecision): CounterSeries {
    const result: ClientDecisionResult = d.decision === 'deny' ? 'deny' : d.wouldDeny ? 'audit_would_deny' : 'allow';
    const client = d.client ?? 'none';
    const destination = this.#clientLabels.value(routeValue(d.route));
    const key = `${client}\0${destination}\0${result}`;
    let series = this.#clientSeries.get(key);
    if (series === undefined) this.#clientSeries.set(key, (series = this.clientDecisions.series(Object.freeze({ client, destination, result }))));
    return series;
  }

  recordReload(event: ReloadEvent): void {
    this.reloads.inc({ result: event.result });
    if (event.result === 'invalid' || event.result === 'unreadable') this.rejected.inc({ code: event.errors?.find((e) => e.severity === 'error')?.code ?? 'POLICY_INVALID' });
    if (event.result === 'ok') {
      this.lastSuccess.set(Date.now() / 1000);
      this.info.reset();
      this.info.set({ hash: event.hash?.slice(0, 12) ?? 'none', version: event.version ?? 'none' }, 1);
    }
  }

  /** `route`: the route that would have denied, null when a default would have ("unmatched", as in every family). */
  recordWouldDeny(route: string | null): void {
    this.wouldDeny.inc({ route: routeValue(route) });
  }
}
