import type { Registry } from 'prom-client';
import { CounterVec, type CounterSeries } from './series.ts';
import { CappedLabel, DEFAULT_LABEL_CAP, peerValue, routeValue } from './label-values.ts';

export type AuthzDecisionResult = 'allow' | 'deny' | 'audit_would_deny';
export const AUTHZ_DECISION_RESULTS: readonly AuthzDecisionResult[] = ['allow', 'deny', 'audit_would_deny'];

export interface AuthzMetricsOptions {
  /** Distinct caller identities kept before new ones become "other" (default 1000). */
  callerCap?: number;
  /** Distinct route names kept before new ones become "other" (default 1000). */
  routeCap?: number;
}

/**
 * meshlet_authz_decisions_total{route, caller, result}: every inbound authorization decision.
 * `audit_would_deny` is an allow that enforcement would have denied (a server in audit mode,
 * or the `audit` default): the number to watch before switching a policy to enforce.
 * Cached per (caller, route) like the request family: a decision costs two Map lookups.
 */
export class AuthzMetrics {
  readonly decisions: CounterVec;
  readonly callers: CappedLabel;
  readonly routes: CappedLabel;
  readonly #cache = new Map<string, Map<string, CounterSeries[]>>();

  constructor(registry: Registry, opts: AuthzMetricsOptions = {}) {
    this.decisions = new CounterVec({
      name: 'meshlet_authz_decisions_total',
      help: 'Inbound authorization decisions by route ("unmatched" when a default decided), caller identity and result (allow, deny, audit_would_deny).',
      labelNames: ['route', 'caller', 'result'],
      registry,
    });
    this.callers = new CappedLabel(opts.callerCap ?? DEFAULT_LABEL_CAP);
    this.routes = new CappedLabel(opts.routeCap ?? DEFAULT_LABEL_CAP);
  }

  /**
   * `caller`: verified SPIFFE ID or null (plaintext); `route`: the deciding route, null for a default.
   * Returns the route label the decision was counted under (capped: possibly "other").
   */
  decided(caller: string | null | undefined, route: string | null, result: AuthzDecisionResult): string {
    const routeLabel = this.routes.value(routeValue(route));
    this.#series(this.callers.value(peerValue(caller)), routeLabel)[result === 'allow' ? 0 : result === 'deny' ? 1 : 2]!.value++;
    return routeLabel;
  }

  /**
   * Makes the three series of (caller, route) now, at 0 (a policy route and a caller it names,
   * when the policy loads). Nothing when either cap is full: made-ahead series never push real
   * callers or routes into "other".
   */
  prepare(caller: string | null, route: string): void {
    const callerLabel = peerValue(caller);
    if (!this.callers.tryAdmit(callerLabel) || !this.routes.tryAdmit(route)) return;
    this.#series(callerLabel, route);
  }

  #series(callerLabel: string, routeLabel: string): CounterSeries[] {
    let byRoute = this.#cache.get(callerLabel);
    if (byRoute === undefined) this.#cache.set(callerLabel, (byRoute = new Map()));
    let byResult = byRoute.get(routeLabel);
    if (byResult === undefined) {
      byResult = AUTHZ_DECISION_RESULTS.map((r) => this.decisions.series(Object.freeze({ route: routeLabel, caller: callerLabel, result: r })));
      byRoute.set(routeLabel, byResult);
    }
    return byResult;
  }
}
