import { readFileSync } from 'node:fs';
import { MeshletError } from '../errors/meshlet-error.ts';
import type { ListenerName } from './connection-guard.ts';

/**
 * File-descriptor headroom. At the open-files limit (RLIMIT_NOFILE) every accept, every
 * upstream connect and every file open fails with EMFILE: an SVID rotation, a policy reload,
 * a kubelet probe on the admin port. So the connection caps of a process's listeners must
 * add up to less than its limit minus a reserve kept for everything else. This is checked
 * once at start: caps that do not fit are lowered in proportion (and the caller logs it);
 * a limit too small even for the reserve and one connection per listener refuses the start.
 */

/**
 * Descriptors the identity service and the injector keep free beyond their listeners' caps:
 * the TokenReview / JWKS calls, certificate file reloads, logs, node's own handles.
 */
export const CONTROL_PLANE_FD_RESERVE = 256;

export interface DescriptorDemand {
  readonly listener: ListenerName;
  /** Bound ports of this kind (each one has its own cap). */
  readonly ports: number;
  /** The cap of one port. */
  readonly maxConnections: number;
  /**
   * Descriptors one connection can hold: itself, plus the upstream connection a proxied
   * connection causes (2), or 1 for a listener that forwards nothing.
   */
  readonly perConnection: 1 | 2;
  /** False: never lowered (the admin port must keep answering probes); its share is set aside first. */
  readonly clampable: boolean;
}

export interface DescriptorBudget {
  /** The soft open-files limit, or undefined when unknown or unlimited (nothing was checked). */
  readonly limit: number | undefined;
  readonly reserve: number;
  /** Descriptors the configured caps could take, reserve included. */
  readonly demand: number;
  /** The cap of one port of each listener, after any lowering. */
  readonly caps: ReadonlyMap<ListenerName, number>;
  /** Whether any cap was lowered. */
  readonly clamped: boolean;
}

export class DescriptorBudgetError extends MeshletError {
  constructor(message: string) {
    super('MESHLET_FD_LIMIT_TOO_LOW', message);
  }
}

/** The soft "Max open files" of this process (Linux /proc/self/limits); undefined elsewhere or when unlimited. */
export function readOpenFilesLimit(limitsFile = '/proc/self/limits'): number | undefined {
  let text: string;
  try {
    text = readFileSync(limitsFile, 'utf8');
  } catch {
    return undefined;
  }
  const m = /^Max open files\s+(\S+)/m.exec(text);
  if (m === null || !/^\d+$/.test(m[1]!)) return undefined;
  return Number(m[1]);
}

/** Fits the caps under `limit - reserve` (see the module comment). Throws DescriptorBudgetError. */
export function fitDescriptorBudget(demands: readonly DescriptorDemand[], reserve: number, limit: number | undefined): DescriptorBudget {
  const need = (d: DescriptorDemand, cap: number): number => d.ports * cap * d.perConnection;
  const fixed = demands.filter((d) => !d.clampable).reduce((sum, d) => sum + need(d, d.maxConnections), reserve);
  const flexible = demands.filter((d) => d.clampable);
  const wanted = flexible.reduce((sum, d) => sum + need(d, d.maxConnections), 0);
  const caps = new Map<ListenerName, number>(demands.map((d) => [d.listener, d.maxConnections]));
  const demand = fixed + wanted;
  if (limit === undefined || demand <= limit) return { limit, reserve, demand, caps, clamped: false };

  const available = limit - fixed;
  const floor = flexible.reduce((sum, d) => sum + need(d, 1), 0);
  if (available < floor) {
    throw new DescriptorBudgetError(
      `the open-files limit (RLIMIT_NOFILE) is ${limit}: too low to keep ${reserve} descriptors in reserve, ${fixed - reserve} for the fixed listeners and one connection per listener (${fixed + floor} needed); raise the container's nofile limit or lower the reserve`,
    );
  }
  const factor = available / wanted;
  for (const d of flexible) caps.set(d.listener, Math.max(1, Math.floor(d.maxConnections * factor)));
  // The floor of 1 can overshoot by a few descriptors; take them back from the largest caps.
  let used = flexible.reduce((sum, d) => sum + need(d, caps.get(d.listener)!), 0);
  while (used > available) {
    const largest = flexible.reduce((a, b) => (caps.get(b.listener)! > caps.get(a.listener)! ? b : a));
    caps.set(largest.listener, caps.get(largest.listener)! - 1);
    used -= largest.ports * largest.perConnection;
  }
  return { limit, reserve, demand, caps, clamped: true };
}

/** One line for the log when caps were lowered: `inbound 1024 -> 96, outbound 1024 -> 96`. */
export function describeClamp(demands: readonly DescriptorDemand[], budget: DescriptorBudget): string {
  return demands
    .filter((d) => budget.caps.get(d.listener) !== d.maxConnections)
    .map((d) => `${d.listener} ${d.maxConnections} -> ${budget.caps.get(d.listener)}`)
    .join(', ');
}
