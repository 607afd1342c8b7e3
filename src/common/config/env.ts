import { MeshletError } from '../errors/meshlet-error.ts';
import { parseDuration } from './duration.ts';
import { validateTrustDomain } from '../identity/spiffe-id.ts';
import { LOG_LEVELS, type LogLevel } from '../log/logger.ts';

/**
 * Environment -> validated, frozen configuration. Every variable is parsed, and every bad
 * one is reported together (linkerd2-proxy style) before the process refuses to start, so an
 * operator fixes a manifest once instead of once per restart.
 */
export type Env = Readonly<Record<string, string | undefined>>;

export interface EnvProblem {
  variable: string;
  value: string | undefined;
  message: string;
}

export class ConfigError extends MeshletError {
  readonly problems: readonly EnvProblem[];

  constructor(problems: EnvProblem[]) {
    super(
      'MESHLET_CONFIG_INVALID',
      `invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n` +
        problems.map((p) => `  ${p.variable}=${p.value === undefined ? '(unset)' : JSON.stringify(p.value)}: ${p.message}`).join('\n'),
    );
    this.problems = problems;
  }
}

/** Thrown by a field parser; the reader turns it into one EnvProblem. */
export class FieldError extends Error {}

/** One documented variable: its name, default, and how to parse it. */
export interface EnvVar<T> {
  name: string;
  description: string;
  /** Shown in docs and --help; undefined = required. */
  default?: string;
  parse: (raw: string) => T;
}

/**
 * Collects values from `env`, recording every problem instead of stopping at the first.
 * Call `done()` at the end: it throws a ConfigError listing all problems, if any.
 */
export class EnvReader {
  readonly #env: Env;
  readonly #problems: EnvProblem[] = [];

  constructor(env: Env) {
    this.#env = env;
  }

  read<T>(v: EnvVar<T>): T {
    const raw = this.#env[v.name];
    const value = raw === undefined || raw === '' ? v.default : raw;
    if (value === undefined) {
      this.#problems.push({ variable: v.name, value: raw, message: `required: ${v.description}` });
      return undefined as T;
    }
    try {
      return v.parse(value);
    } catch (err) {
      this.#problems.push({ variable: v.name, value, message: (err as Error).message });
      return undefined as T;
    }
  }

  /** `read` bound to a catalog: `v('port')` reads catalog.port, typed by its parser. */
  readFrom<C extends Record<string, EnvVar<unknown>>>(catalog: C): <K extends keyof C>(key: K) => ReturnType<C[K]['parse']> {
    return (key) => this.read(catalog[key]!) as ReturnType<C[typeof key]['parse']>;
  }

  /** A cross-field problem found after reading (e.g. two ports that collide). */
  problem(variable: string, message: string): void {
    this.#problems.push({ variable, value: this.#env[variable], message });
  }

  done(): void {
    if (this.#problems.length > 0) throw new ConfigError(this.#problems);
  }
}

export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as object)) deepFreeze(v);
  }
  return value;
}

/** Renders variables as a --help / README table. */
export function describeEnv(vars: readonly EnvVar<unknown>[]): string {
  const width = Math.max(...vars.map((v) => v.name.length));
  return vars.map((v) => `  ${v.name.padEnd(width)}  ${v.description}${v.default === undefined ? ' (required)' : v.default === '' ? '' : ` (default: ${v.default})`}`).join('\n');
}

// ---- field parsers shared by every process's configuration ----

export function port(raw: string): number {
  if (!/^\d+$/.test(raw)) throw new FieldError('must be a port number (1-65535)');
  const n = Number(raw);
  if (n < 1 || n > 65535) throw new FieldError('must be a port number (1-65535)');
  return n;
}

/** An integer from `min` to `max` inclusive (e.g. a port where 0 means "any free port"). */
export function integerIn(min: number, max: number): (raw: string) => number {
  return (raw) => {
    if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) throw new FieldError(`must be an integer from ${min} to ${max}`);
    return Number(raw);
  };
}

export function positiveInt(raw: string): number {
  if (!/^\d+$/.test(raw) || Number(raw) < 1) throw new FieldError('must be a positive integer');
  return Number(raw);
}

export function bool(raw: string): boolean {
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  throw new FieldError('must be true or false');
}

export function oneOf<const T extends string>(...allowed: T[]): (raw: string) => T {
  return (raw) => {
    if ((allowed as string[]).includes(raw)) return raw as T;
    throw new FieldError(`must be one of ${allowed.join(', ')}`);
  };
}

/** "host:port" with a numeric port; IPv6 as [::1]:port. */
export function hostPort(raw: string): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:\s]+):(\d+)$/.exec(raw);
  if (!m) throw new FieldError('must be host:port');
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port: port(m[2]!) };
}

/** A Kubernetes object name: a DNS subdomain (namespace, ServiceAccount, ConfigMap). */
export function isK8sName(raw: string): boolean {
  return /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(raw) && raw.length <= 253;
}

/** A namespace name (a DNS-1123 label: at most 63 of a-z 0-9 -, starting and ending with a letter or digit). */
export function isNamespaceName(raw: string): boolean {
  return /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(raw);
}

export function k8sName(raw: string): string {
  if (!isK8sName(raw)) throw new FieldError('must be a Kubernetes object name (lowercase a-z 0-9 - .)');
  return raw;
}

/** A value taken as written. */
export function text(raw: string): string {
  return raw;
}

export function absolutePath(raw: string): string {
  if (!raw.startsWith('/')) throw new FieldError('must be an absolute path');
  return raw;
}

/** A SPIFFE trust domain (lowercase a-z 0-9 . - _). */
export function trustDomain(raw: string): string {
  try {
    validateTrustDomain(raw);
  } catch (err) {
    throw new FieldError((err as Error).message);
  }
  return raw;
}

/** A duration variable (`500ms`, `30s`, `5m`, `1h30m`) -> milliseconds. */
export function durationField(raw: string): number {
  try {
    return parseDuration(raw);
  } catch (err) {
    throw new FieldError((err as Error).message);
  }
}

/**
 * Comma-separated list, empty entries ignored, each parsed by `item`. A bad entry is named in
 * the problem (`entry "x": …` unless `describeEntry` words it otherwise).
 */
export function list<T>(item: (raw: string) => T, describeEntry = (entry: string, message: string) => `entry ${JSON.stringify(entry)}: ${message}`): (raw: string) => T[] {
  return (raw) =>
    raw
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '')
      .map((s) => {
        try {
          return item(s);
        } catch (err) {
          throw new FieldError(describeEntry(s, (err as Error).message));
        }
      });
}

/** MESHLET_LOG_LEVEL, the same for every meshlet process. */
export const LOG_LEVEL_ENV = { name: 'MESHLET_LOG_LEVEL', default: 'info', description: LOG_LEVELS.join(' | '), parse: oneOf(...LOG_LEVELS) } satisfies EnvVar<LogLevel>;

/** A DNS domain (the cluster's: `cluster.local`), lower-cased, without a trailing dot. */
export function dnsDomain(raw: string): string {
  const d = raw.toLowerCase().replace(/\.$/, '');
  if (d.length > 253 || !d.split('.').every((l) => /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(l))) throw new FieldError('must be a DNS domain (e.g. cluster.local)');
  return d;
}
