import { Counter, type Registry } from 'prom-client';
import { PROXY_ERROR_CATALOG } from '../proxy/http/errors.ts';
import { TCP_REFUSAL_CATALOG } from '../proxy/tcp/tcp-refusals.ts';
import { DIRECTIONS, OVERFLOW_LABEL, type Direction } from './label-values.ts';

/**
 * A connection that iptables sent to the inbound catch-all listener: TCP to a port the pod
 * does not declare. It never reaches the app; it is closed and counted with this code.
 */
export const UNDECLARED_PORT_REFUSAL = 'MESHLET_UNDECLARED_PORT';

/** The bounded set of `code` label values: the proxy's error catalog and the opaque-TCP one (undeclared ports, passthrough denials). */
export const REFUSAL_CODES: readonly string[] = [...new Set([...Object.keys(PROXY_ERROR_CATALOG), ...Object.keys(TCP_REFUSAL_CATALOG), UNDECLARED_PORT_REFUSAL])];
const KNOWN = new Set(REFUSAL_CODES);

/**
 * meshlet_proxy_refusals_total{direction, code}: requests and connections the sidecar answered
 * itself with an error (src/data-plane/proxy/http/errors.ts) — denials, smuggling attempts
 * (MESHLET_BAD_REQUEST), refused paths, upstream failures — and connections to undeclared
 * ports. Fed by the ProxyObserver `refused` hook; every series starts at 0.
 */
export class RefusalMetrics {
  readonly refusals: Counter<'direction' | 'code'>;

  constructor(registry: Registry) {
    this.refusals = new Counter({
      name: 'meshlet_proxy_refusals_total',
      help: 'Requests and connections the sidecar refused or failed itself, by direction and meshlet error code (see docs/proxy.md), including MESHLET_UNDECLARED_PORT.',
      labelNames: ['direction', 'code'],
      registers: [registry],
    });
    for (const direction of DIRECTIONS) for (const code of REFUSAL_CODES) this.refusals.inc({ direction, code }, 0);
  }

  refused(direction: Direction, code: string): void {
    this.refusals.inc({ direction, code: KNOWN.has(code) ? code : OVERFLOW_LABEL });
  }
}
