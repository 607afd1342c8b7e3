import { Counter, Gauge, Registry } from 'prom-client';
import type { ReloadEvent } from './store.ts';
import { routeValue } from '../metrics/label-values.ts';

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
    this.wouldDeny = new Counter({
      name: 'meshlet_policy_audit_would_deny_total',
      help: 'Requests allowed in audit mode that enforcement would have denied, by route ("unmatched" = a default decided).',
      labelNames: ['route'],
      registers: [registry],
    });
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
