import { MeshletError } from '../errors/meshlet-error.ts';

/**
 * Timeouts and limits shared by the inbound and outbound proxies. Defaults are documented in
 * docs/proxy.md; `resolveProxySettings` validates every field at once and freezes the result.
 */
export interface ProxyTimeouts {
  /** TCP connect to the next hop (peer sidecar, app, plaintext destination). */
  readonly connectMs: number;
  /** mTLS handshake, both as server (inbound listener) and as client (towards a peer sidecar). */
  readonly tlsHandshakeMs: number;
  /** From connection/last response until the whole request head has arrived (slowloris guard). */
  readonly requestHeadersMs: number;
  /** An idle keep-alive connection is closed after this long, on both the listening and pooled sides. */
  readonly idleMs: number;
  /** Graceful drain: in-flight requests get this long to finish, then connections are closed. */
  readonly drainMs: number;
}

export interface ProxyLimits {
  /** Largest request head accepted (request line + headers), bytes. Larger -> 431. */
  readonly maxHeaderBytes: number;
  /** Most header fields accepted in a request. More -> 431. */
  readonly maxHeaderCount: number;
  /** Pooled connections per next hop (peer sidecar or app port). */
  readonly maxConnectionsPerUpstream: number;
}

export interface ProxySettings {
  readonly timeouts: ProxyTimeouts;
  readonly limits: ProxyLimits;
}

export const DEFAULT_PROXY_SETTINGS: ProxySettings = Object.freeze({
  timeouts: Object.freeze({
    connectMs: 5_000,
    tlsHandshakeMs: 10_000,
    requestHeadersMs: 30_000,
    // Below node:http's and most app servers' own 5 s keep-alive timeout would race the app
    // closing a pooled connection as we reuse it; the pool retries such a bodiless request
    // once, and node's agent honours the app's `Keep-Alive: timeout=` hint.
    idleMs: 60_000,
    drainMs: 25_000,
  }),
  limits: Object.freeze({
    maxHeaderBytes: 16 * 1024,
    maxHeaderCount: 100,
    maxConnectionsPerUpstream: 256,
  }),
});

export class ProxyConfigError extends MeshletError {
  readonly problems: readonly string[];
  constructor(problems: string[]) {
    super('MESHLET_PROXY_CONFIG_INVALID', `invalid proxy settings: ${problems.join('; ')}`);
    this.problems = problems;
  }
}

export interface ProxySettingsInput {
  timeouts?: Partial<ProxyTimeouts>;
  limits?: Partial<ProxyLimits>;
}

/** Fills defaults, checks every field (all problems reported at once), freezes. */
export function resolveProxySettings(input: ProxySettingsInput = {}): ProxySettings {
  const problems: string[] = [];
  const timeouts = pick('timeouts', DEFAULT_PROXY_SETTINGS.timeouts, input.timeouts, problems);
  const limits = pick('limits', DEFAULT_PROXY_SETTINGS.limits, input.limits, problems);
  if (problems.length > 0) throw new ProxyConfigError(problems);
  return Object.freeze({ timeouts: Object.freeze(timeouts), limits: Object.freeze(limits) });
}

function pick<T extends object>(section: string, defaults: T, given: Partial<T> | undefined, problems: string[]): T {
  const out = { ...defaults };
  for (const key of Object.keys(given ?? {}) as (keyof T & string)[]) {
    const value = given![key];
    if (!(key in defaults)) {
      problems.push(`${section}.${key} is not a known setting`);
    } else if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
      problems.push(`${section}.${key} must be a positive integer, got ${JSON.stringify(value)}`);
    } else {
      (out as Record<string, number>)[key] = value;
    }
  }
  return out;
}
